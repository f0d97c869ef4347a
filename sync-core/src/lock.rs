//! The lease lock, for storages whose conditional writes cannot be trusted and whose
//! server has no lock of its own.
//!
//! When the [honesty probe](crate::probe) finds that a storage does not honour both
//! `IfMatch` and `IfAbsent`, and it has no server-enforced folder lock
//! ([`crate::server_lock`], which fences and is always preferred), the engine
//! serialises its commits with a lease lock: a small file `<dir>/.lock` that names its
//! holder and how long the lease lasts.
//!
//! * **Acquire.** Where `IfAbsent` is honest, the lock is created with `IfAbsent`:
//!   exactly one client wins. Elsewhere the client checks that no live lock exists,
//!   writes its own, pauses ([`LeaseOptions::settle`]), and reads the lock back: it
//!   holds the lease only if the file still names it, and only if its write was
//!   answered within `settle` of the look that found no live lock (Fischer's
//!   timed mutual exclusion: a write that lands later may replace the lock of a
//!   client that already read back and went on). An attempt that took longer, or
//!   broke off so that when its write landed is unknown, does not hold: its lock is
//!   left to expire, keeping everyone out until such another client is done.
//! * **Expiry.** A lock whose holder stopped refreshing it is expired, judged without
//!   trusting any device clock: by the storage's own clock where
//!   [`Capabilities::server_clock`](crate::Capabilities::server_clock) says
//!   `Entry::modified` comes from the server (the lock's modification time plus its
//!   lease length is compared with the server's "now", learnt by writing a tiny clock
//!   file), and in any case when the lock's version has not changed for one lease
//!   length as measured by this process's monotonic clock (where the server clock
//!   told the lock's age when first seen, that age counts towards the lease). The
//!   server clock is asked once per lock version seen, not on every look. An expired lock is taken
//!   over with `IfMatch` on its version where that is honest, else deleted and
//!   acquired afresh.
//! * **Refresh.** While held, a background task rewrites the lock every
//!   [`LeaseOptions::refresh_every`] (with `IfMatch` where honest, else after reading
//!   back that it still names us). If a refresh finds the lock taken, or no refresh
//!   succeeds for a whole lease, the lease is marked lost.
//! * **Use.** Call [`LeaseGuard::check`] right before the commit point (the database
//!   upload); it fails with [`Error::Locked`] if the lease was lost.
//! * **Release.** [`LeaseGuard::release`] stops refreshing and deletes the lock if it
//!   still names us. A dropped guard stops refreshing; its lock then expires.
//!
//! ## Residual risk
//!
//! A lease lock on a storage without atomic conditional writes is a mitigation, not a
//! guarantee:
//!
//! * Without honest `IfAbsent`, two clients can both believe they hold the lock if one
//!   writes its lock *after* the other has already read back. Each client measures
//!   its own look→write window and refuses the lease when it reaches `settle`
//!   (a never-lose run on webdav-server lost two values before that rule: a lock write
//!   retried after a fault landed late); what is left is a server that applies a write
//!   long after answering it, or clients with different `settle` values.
//! * Without honest conditional delete, taking over an expired lock (delete, then
//!   create) can delete a lock another client has just created.
//! * A holder that stalls for longer than a lease (suspended laptop) without noticing
//!   can commit after its lease expired and someone else took over; [`LeaseGuard::check`]
//!   right before the commit narrows this to the length of one write.
//! * Expiry by server clock relies on the storage stamping `modified` itself; without
//!   it, a waiter needs to see the lock unchanged for a full lease, so a crashed
//!   holder blocks others for up to one lease length.
//!
//! ```no_run
//! # async fn demo(storage: std::sync::Arc<dyn syncfabric_core::Storage>) -> syncfabric_core::Result<()> {
//! use syncfabric_core::{lock::{LeaseLock, LeaseOptions}, RemotePath};
//! let dir = RemotePath::parse("0b7c4a1e-vault")?;
//! let guard = LeaseLock::acquire(storage, &dir, LeaseOptions::default()).await?;
//! // ... read, merge, then right before the commit:
//! guard.check().await?;
//! // ... write the database ...
//! guard.release().await?;
//! # Ok(()) }
//! ```

use crate::{Body, Capabilities, Entry, Error, Precondition, RemotePath, Result, Storage, Version};
use futures_util::StreamExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// The name of the lock file inside the locked folder.
pub const LOCK_FILE: &str = ".lock";

/// How a [`LeaseLock`] behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseOptions {
    /// How long a lease lasts without a refresh (written into the lock).
    pub ttl: Duration,
    /// How often the holder rewrites the lock (should be well under `ttl`).
    pub refresh_every: Duration,
    /// The pause between writing the lock and reading it back, on storages without an
    /// honest `IfAbsent`. Must exceed the slowest client's stat→write latency.
    pub settle: Duration,
    /// How long [`LeaseLock::acquire`] waits for another holder before failing with
    /// [`Error::Locked`].
    pub acquire_timeout: Duration,
    /// The wait between two looks at a lock held by someone else (plus jitter of up
    /// to the same again).
    pub poll_interval: Duration,
    /// A human label written into the lock (e.g. the device name), for diagnostics.
    /// No secret; newlines are replaced.
    pub label: String,
}

impl Default for LeaseOptions {
    fn default() -> Self {
        LeaseOptions {
            ttl: Duration::from_secs(60),
            refresh_every: Duration::from_secs(20),
            settle: Duration::from_secs(2),
            acquire_timeout: Duration::from_secs(300),
            poll_interval: Duration::from_secs(1),
            label: String::new(),
        }
    }
}

/// The parsed content of a lock file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockInfo {
    /// The holder's random id (new for every acquisition).
    pub holder: String,
    /// The holder's label.
    pub label: String,
    /// The lease length the holder promised to refresh within.
    pub ttl: Duration,
}

impl LockInfo {
    /// The lock file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let label: String = self
            .label
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        format!(
            "syncfabric-lease 1\nholder {}\nlabel {}\nttl_ms {}\n",
            self.holder,
            label,
            self.ttl.as_millis()
        )
        .into_bytes()
    }

    /// The bytes of the `n`th refresh: the same lock with a `refresh n` line, so every
    /// refresh changes the file's content and therefore its version even on storages
    /// whose versions are content hashes (a folder, nginx, lighttpd, rclone). Identical
    /// rewrites would look like a dead holder to everyone judging expiry by "version
    /// unchanged for one lease", and the lease would be taken over while held.
    fn encode_refresh(&self, n: u64) -> Vec<u8> {
        let mut b = self.encode();
        b.extend_from_slice(format!("refresh {n}\n").as_bytes());
        b
    }

    /// Parses a lock file; `None` if it is not one (then it is treated as a lock with
    /// an unknown holder and the reader's own `ttl`).
    pub fn decode(bytes: &[u8]) -> Option<LockInfo> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.lines();
        if lines.next()? != "syncfabric-lease 1" {
            return None;
        }
        let (mut holder, mut label, mut ttl) = (None, String::new(), None);
        for line in lines {
            let (k, v) = line.split_once(' ').unwrap_or((line, ""));
            match k {
                "holder" if !v.is_empty() => holder = Some(v.to_string()),
                "label" => label = v.to_string(),
                "ttl_ms" => ttl = v.parse::<u64>().ok().map(Duration::from_millis),
                _ => {}
            }
        }
        Some(LockInfo {
            holder: holder?,
            label,
            ttl: ttl?,
        })
    }
}

/// The lease lock of one folder. See the [module docs](self).
#[derive(Debug)]
pub struct LeaseLock;

/// Mutable state shared by the guard and its refresh task.
#[derive(Debug)]
struct Held {
    /// The lock's version as we last wrote it.
    version: Option<Version>,
    /// Set once released; the refresh task stops.
    stopped: bool,
}

#[derive(Debug)]
struct Shared {
    storage: Arc<dyn Storage>,
    path: RemotePath,
    info: LockInfo,
    caps: Capabilities,
    held: tokio::sync::Mutex<Held>,
    lost: AtomicBool,
    /// Refreshes written so far (see [`LockInfo::encode_refresh`]).
    refreshes: std::sync::atomic::AtomicU64,
    /// When the last successful write of the lock (acquire or refresh) *started*: it
    /// landed no earlier, so nobody can judge the lease expired before this + `ttl`.
    confirmed: std::sync::Mutex<Instant>,
    /// The lease length.
    ttl: Duration,
}

impl Shared {
    fn confirm(&self, at: Instant) {
        let mut c = self.confirmed.lock().unwrap_or_else(|p| p.into_inner());
        if at > *c {
            *c = at;
        }
    }

    /// How long nobody else can judge the lease expired (ignoring `lost`).
    fn unexpired_for(&self) -> Duration {
        let confirmed = *self.confirmed.lock().unwrap_or_else(|p| p.into_inner());
        (confirmed + self.ttl).saturating_duration_since(Instant::now())
    }
}

/// A held lease. Keep it while working; [`release`](LeaseGuard::release) it at the end.
/// Dropping it stops the refresh (the lock then expires after one lease).
#[derive(Debug)]
pub struct LeaseGuard {
    shared: Arc<Shared>,
    refresher: tokio::task::JoinHandle<()>,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

/// The retries of one lock step that failed with a retryable error (a reset, a body
/// cut short, a 503 that outlived the storage's own retries). The storage's retry
/// layer cannot replay a body that broke off half-way; the lock must not give up on
/// one bad packet, and above all must not leave its file behind. Short waits: the
/// lease is ticking.
fn step_retrier() -> crate::retry::Retrier {
    crate::retry::Retrier::new(
        crate::retry::RetryPolicy {
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
            max_attempts: 5,
            max_total: Duration::from_secs(20),
            ..Default::default()
        },
        crate::retry::Pacer::new(),
    )
}

/// Reads a small file whole, again from the start if the read breaks off.
async fn read_all(
    storage: &dyn Storage,
    path: &RemotePath,
) -> Result<Option<(Vec<u8>, Option<Version>)>> {
    step_retrier().run(|| read_all_once(storage, path)).await
}

async fn read_all_once(
    storage: &dyn Storage,
    path: &RemotePath,
) -> Result<Option<(Vec<u8>, Option<Version>)>> {
    let mut dl = match storage.read(path).await {
        Ok(d) => d,
        Err(Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    while let Some(chunk) = dl.stream.next().await {
        out.extend_from_slice(&chunk?);
        if out.len() > 64 * 1024 {
            return Err(Error::Corrupt {
                message: format!("{path}: lock file larger than 64 KiB"),
            });
        }
    }
    Ok(Some((out, dl.version)))
}

/// The server's "now", learnt by writing a tiny file and reading its modification time.
async fn server_now(
    storage: &dyn Storage,
    dir: &RemotePath,
    holder: &str,
) -> Result<Option<SystemTime>> {
    let p = dir.join(&format!("{LOCK_FILE}.clock-{holder}"))?;
    let e = storage
        .write(&p, Body::from(Vec::new()), Precondition::None)
        .await?;
    if let Err(err) = storage.delete(&p, Precondition::None).await {
        tracing::debug!(path = %p, error = %err, "could not remove the clock file");
    }
    Ok(e.modified)
}

fn jitter(d: Duration) -> Duration {
    d + d.mul_f64(fastrand::f64())
}

impl LeaseLock {
    /// The lock file of folder `dir`.
    pub fn path(dir: &RemotePath) -> Result<RemotePath> {
        dir.join(LOCK_FILE)
    }

    /// Acquires the lease of folder `dir`, waiting up to `opts.acquire_timeout` for a
    /// live holder to release it or let it expire; then [`Error::Locked`]. Which
    /// protocol is used follows `storage.capabilities()`, so pass a storage whose
    /// capabilities the honesty probe confirmed (a [`crate::probe::ProbedStorage`]).
    /// Starts the refresh task (needs a tokio runtime).
    pub async fn acquire(
        storage: Arc<dyn Storage>,
        dir: &RemotePath,
        opts: LeaseOptions,
    ) -> Result<LeaseGuard> {
        let path = LeaseLock::path(dir)?;
        let caps = storage.capabilities();
        let info = LockInfo {
            holder: format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
            label: opts.label.clone(),
            ttl: opts.ttl,
        };
        let deadline = Instant::now() + opts.acquire_timeout;
        // The version of a foreign lock and when we first saw it (monotonic clock).
        let mut seen: Option<(Option<Version>, Instant, Duration)> = None;
        let mut told = false;
        loop {
            let attempt_started = Instant::now();
            let got =
                match Self::try_once(storage.as_ref(), dir, &path, &info, &caps, &opts, &mut seen)
                    .await
                {
                    Ok(got) => got,
                    // A step broke off (a reset, a 503 past the storage's retries). Our
                    // write may have landed all the same, at a time we cannot know: where
                    // `IfAbsent` is honest a lock that names us is ours; elsewhere it is
                    // not taken (see `try_once`) and is left to expire. Either way try
                    // again like after a busy lock.
                    Err(e) if e.is_retryable() => {
                        tracing::debug!(lock = %path, error = %e, "lock attempt broke off");
                        tokio::time::sleep(opts.settle).await;
                        match read_all(storage.as_ref(), &path).await {
                            Ok(Some((bytes, version)))
                                if caps.if_absent
                                    && LockInfo::decode(&bytes)
                                        .is_some_and(|i| i.holder == info.holder) =>
                            {
                                Some(version.unwrap_or_else(|| Version::new("")))
                            }
                            _ => None,
                        }
                    }
                    Err(e) => return Err(e),
                };
            if let Some(version) = got {
                let shared = Arc::new(Shared {
                    storage,
                    path,
                    info,
                    caps,
                    held: tokio::sync::Mutex::new(Held {
                        version: Some(version),
                        stopped: false,
                    }),
                    lost: AtomicBool::new(false),
                    refreshes: std::sync::atomic::AtomicU64::new(0),
                    confirmed: std::sync::Mutex::new(attempt_started),
                    ttl: opts.ttl,
                });
                let refresher = tokio::spawn(refresh_loop(shared.clone(), opts.refresh_every));
                return Ok(LeaseGuard { shared, refresher });
            }
            let wait = jitter(opts.poll_interval);
            if Instant::now() + wait > deadline {
                return Err(Error::Locked {
                    path: path.to_string(),
                    holder: None,
                });
            }
            if let Some((_, first_seen, ttl)) = seen.as_ref().filter(|_| !told) {
                told = true;
                let left = deadline.saturating_duration_since(Instant::now()).as_secs();
                let expires = ttl.saturating_sub(first_seen.elapsed()).as_secs();
                tracing::warn!(
                    "{path} is held by another device's sync (its lease ends within {expires} s unless renewed); waiting up to {left} s"
                );
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt: `Some(version)` when we now hold the lock.
    async fn try_once(
        storage: &dyn Storage,
        dir: &RemotePath,
        path: &RemotePath,
        info: &LockInfo,
        caps: &Capabilities,
        opts: &LeaseOptions,
        seen: &mut Option<(Option<Version>, Instant, Duration)>,
    ) -> Result<Option<Version>> {
        let body = || Body::from(info.encode());
        if caps.if_absent {
            match storage.write(path, body(), Precondition::IfAbsent).await {
                Ok(e) => return Ok(Some(e.version.unwrap_or_else(|| Version::new("")))),
                Err(Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        // Someone's lock may be there: is it live? (The look starts the window our
        // write must land in, see below.)
        let mut checked_at = Instant::now();
        let existing = storage.stat(path).await?;
        if let Some(entry) = &existing {
            if !Self::expired(storage, dir, entry, info, caps, opts, seen).await? {
                return Ok(None);
            }
            tracing::info!(lock = %path, "taking over an expired lease");
            // Take over the expired lock.
            if caps.if_match {
                if let Some(v) = &entry.version {
                    return match storage
                        .write(path, body(), Precondition::IfMatch(v.clone()))
                        .await
                    {
                        Ok(e) => Ok(Some(e.version.unwrap_or_else(|| Version::new("")))),
                        Err(Error::PreconditionFailed { .. } | Error::NotFound { .. }) => Ok(None),
                        Err(e) => Err(e),
                    };
                }
            }
            let pre = match (&entry.version, caps.conditional_delete) {
                (Some(v), true) => Precondition::IfMatch(v.clone()),
                _ => Precondition::None,
            };
            match storage.delete(path, pre).await {
                Ok(()) | Err(Error::NotFound { .. }) => {}
                Err(Error::PreconditionFailed { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
            *seen = None;
            if caps.if_absent {
                return match storage.write(path, body(), Precondition::IfAbsent).await {
                    Ok(e) => Ok(Some(e.version.unwrap_or_else(|| Version::new("")))),
                    Err(Error::AlreadyExists { .. }) => Ok(None),
                    Err(e) => Err(e),
                };
            }
            // Judging the expiry took a while (the server's clock is asked with a
            // write): look again, so that the window below starts now.
            checked_at = Instant::now();
            if storage.stat(path).await?.is_some() {
                return Ok(None);
            }
        } else if caps.if_absent {
            // It vanished between our IfAbsent and the stat: try again at once.
            return Box::pin(Self::try_once(storage, dir, path, info, caps, opts, seen)).await;
        }
        // No honest IfAbsent: write, pause, read back. This holds only if every
        // client's write lands within `settle` of its look. Another client F that
        // wrote after our look reads back `settle` after its write was answered; if our
        // look-to-answer window W is under `settle`, our write landed before that
        // read-back (ours <= look + W < F's write + settle), so F sees our lock and
        // stays out. A longer window (a write retried after a 5xx, a slow network) may
        // have replaced the lock of a client that already read back and went on: such
        // an attempt never holds, and its lock is left to expire, which keeps everyone
        // out until that client's commit is over.
        storage.write(path, body(), Precondition::None).await?;
        if checked_at.elapsed() >= opts.settle {
            tracing::debug!(lock = %path, window = ?checked_at.elapsed(), "lock written too long after the look: not taken");
            return Ok(None);
        }
        tokio::time::sleep(opts.settle).await;
        match read_all(storage, path).await? {
            Some((bytes, version))
                if LockInfo::decode(&bytes).is_some_and(|i| i.holder == info.holder) =>
            {
                let version = match version {
                    Some(v) => v,
                    None => storage
                        .stat(path)
                        .await?
                        .and_then(|e| e.version)
                        .unwrap_or_else(|| Version::new("")),
                };
                Ok(Some(version))
            }
            _ => Ok(None),
        }
    }

    /// Whether the foreign lock `entry` is expired.
    async fn expired(
        storage: &dyn Storage,
        dir: &RemotePath,
        entry: &Entry,
        info: &LockInfo,
        caps: &Capabilities,
        opts: &LeaseOptions,
        seen: &mut Option<(Option<Version>, Instant, Duration)>,
    ) -> Result<bool> {
        let now = Instant::now();
        // A lock version we have been watching: expired once it stayed unchanged for
        // a whole lease (its age as first judged included).
        if let Some((v, since, ttl)) = seen {
            if *v == entry.version {
                return Ok(now.saturating_duration_since(*since) >= *ttl);
            }
        }
        // A new lock version: read its lease length, and judge its age by the
        // server's clock where the storage stamps modification times itself.
        let ttl = match read_all(storage, &entry.path).await? {
            Some((bytes, _)) => LockInfo::decode(&bytes).map_or(opts.ttl, |i| i.ttl),
            None => return Ok(true),
        };
        let mut age = Duration::ZERO;
        if caps.server_clock {
            if let Some(modified) = entry.modified {
                if let Some(server) = server_now(storage, dir, &info.holder).await? {
                    age = server.duration_since(modified).unwrap_or(Duration::ZERO);
                    if age > ttl {
                        return Ok(true);
                    }
                }
            }
        }
        // `now - age` cannot underflow in practice (age <= ttl); fall back to now.
        let since = now.checked_sub(age).unwrap_or(now);
        *seen = Some((entry.version.clone(), since, ttl));
        Ok(false)
    }
}

async fn refresh_loop(shared: Arc<Shared>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let mut held = shared.held.lock().await;
        if held.stopped || shared.lost.load(Ordering::SeqCst) {
            return;
        }
        let started = Instant::now();
        match refresh_once(&shared, &held).await {
            Ok(Some(v)) => {
                held.version = Some(v);
                shared.confirm(started);
            }
            Ok(None) => {
                tracing::warn!(lock = %shared.path, "lease lost: the lock was taken by another client");
                shared.lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => {
                tracing::debug!(lock = %shared.path, error = %e, "lease refresh failed");
                if shared.unexpired_for().is_zero() {
                    tracing::warn!(lock = %shared.path, "lease lost: no refresh succeeded for a whole lease");
                    shared.lost.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }
    }
}

/// Rewrites the lock; `Ok(None)` if it is no longer ours.
async fn refresh_once(shared: &Shared, held: &Held) -> Result<Option<Version>> {
    let storage = shared.storage.as_ref();
    let n = shared.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
    let body = Body::from(shared.info.encode_refresh(n));
    if shared.caps.if_match {
        if let Some(v) = &held.version {
            return match storage
                .write(&shared.path, body, Precondition::IfMatch(v.clone()))
                .await
            {
                Ok(e) => Ok(Some(e.version.unwrap_or_else(|| Version::new("")))),
                Err(Error::PreconditionFailed { .. }) => Ok(None),
                Err(e) => Err(e),
            };
        }
    }
    if !still_ours(shared).await? {
        return Ok(None);
    }
    let e = storage
        .write(&shared.path, body, Precondition::None)
        .await?;
    Ok(Some(e.version.unwrap_or_else(|| Version::new(""))))
}

async fn still_ours(shared: &Shared) -> Result<bool> {
    Ok(
        match read_all(shared.storage.as_ref(), &shared.path).await? {
            Some((bytes, _)) => {
                LockInfo::decode(&bytes).is_some_and(|i| i.holder == shared.info.holder)
            }
            None => false,
        },
    )
}

impl LeaseGuard {
    /// This holder's id, as written in the lock.
    pub fn holder(&self) -> &str {
        &self.shared.info.holder
    }

    /// The lock file.
    pub fn path(&self) -> &RemotePath {
        &self.shared.path
    }

    /// False once a refresh found the lock taken or failed for a whole lease.
    pub fn is_held(&self) -> bool {
        !self.shared.lost.load(Ordering::SeqCst)
    }

    /// How long the lease is certainly still ours: until one `ttl` after the start of
    /// the last successful write of the lock (another client cannot judge it expired
    /// sooner). Zero once the lease is known lost.
    pub fn valid_for(&self) -> Duration {
        if !self.is_held() {
            return Duration::ZERO;
        }
        self.shared.unexpired_for()
    }

    /// Runs `work` (typically the commit write) only while the lease is certainly
    /// ours: if the lease is lost, or its certain remainder falls below a quarter of
    /// `ttl` (the refreshes are failing), `work` is dropped — a request not yet sent
    /// is never sent, one in flight is cut — and [`Error::Locked`] returned. A write
    /// that keeps retrying must not land after another client may have taken over:
    /// that is how a lease turns into a lost update. While refreshes succeed, `work`
    /// may take as long as it needs.
    pub async fn bounded<T, F>(&self, work: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        let margin = self.shared.ttl / 4;
        let watchdog = async {
            loop {
                if self.valid_for() <= margin {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::select! {
            r = work => r,
            _ = watchdog => {
                tracing::warn!(lock = %self.shared.path, "lease about to lapse: the write under it is abandoned");
                Err(Error::Locked {
                    path: self.shared.path.to_string(),
                    holder: None,
                })
            }
        }
    }

    /// Confirms, by reading the lock back, that we still hold the lease: call right
    /// before the commit point. [`Error::Locked`] if it was lost or names someone else.
    pub async fn check(&self) -> Result<()> {
        let _held = self.shared.held.lock().await;
        if self.shared.lost.load(Ordering::SeqCst) || !still_ours(&self.shared).await? {
            self.shared.lost.store(true, Ordering::SeqCst);
            return Err(Error::Locked {
                path: self.shared.path.to_string(),
                holder: None,
            });
        }
        Ok(())
    }

    /// Stops refreshing and deletes the lock if it still names us (with `IfMatch` on
    /// our last version where conditional deletes are honest). A lock that is already
    /// someone else's is left alone and `Ok(())` returned: our lease is over either way.
    /// A step that fails with a retryable error is tried again a few times, so that
    /// one reset does not leave the lock behind for a whole lease.
    pub async fn release(self) -> Result<()> {
        let shared = self.shared.clone();
        let mut held = shared.held.lock().await;
        held.stopped = true;
        self.refresher.abort();
        step_retrier().run(|| release_once(&shared, &held)).await
    }
}

async fn release_once(shared: &Shared, held: &Held) -> Result<()> {
    {
        let storage = shared.storage.as_ref();
        if shared.caps.conditional_delete {
            if let Some(v) = &held.version {
                return match storage
                    .delete(&shared.path, Precondition::IfMatch(v.clone()))
                    .await
                {
                    Ok(())
                    | Err(Error::PreconditionFailed { .. })
                    | Err(Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(e),
                };
            }
        }
        if still_ours(shared).await? {
            match storage.delete(&shared.path, Precondition::None).await {
                // A retried delete whose first try landed.
                Ok(()) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_store::MemStore;
    use std::sync::atomic::AtomicU64;

    fn dir() -> RemotePath {
        RemotePath::parse("vault").unwrap()
    }

    fn opts() -> LeaseOptions {
        LeaseOptions {
            label: "test".into(),
            ..Default::default()
        }
    }

    async fn contents(s: &dyn Storage, p: &RemotePath) -> Option<Vec<u8>> {
        read_all(s, p).await.unwrap().map(|(b, _)| b)
    }

    /// A shared store without honest `IfAbsent`, as one client sees it: its lock writes
    /// are answered `write_delay` late (a write retried after a fault).
    #[derive(Debug)]
    struct NoIfAbsent {
        inner: Arc<MemStore>,
        write_delay: Duration,
    }
    #[async_trait::async_trait]
    impl Storage for NoIfAbsent {
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                if_match: false,
                if_absent: false,
                conditional_delete: false,
                ..self.inner.capabilities()
            }
        }
        fn describe(&self) -> String {
            "no IfAbsent".into()
        }
        async fn stat(&self, p: &RemotePath) -> Result<Option<Entry>> {
            self.inner.stat(p).await
        }
        async fn list(&self, p: &RemotePath) -> Result<Vec<Entry>> {
            self.inner.list(p).await
        }
        async fn read(&self, p: &RemotePath) -> Result<crate::Download> {
            self.inner.read(p).await
        }
        async fn write(&self, p: &RemotePath, b: Body, pre: Precondition) -> Result<Entry> {
            tokio::time::sleep(self.write_delay).await;
            self.inner.write(p, b, pre).await
        }
        async fn delete(&self, p: &RemotePath, pre: Precondition) -> Result<()> {
            self.inner.delete(p, pre).await
        }
        async fn create_dir(&self, p: &RemotePath) -> Result<()> {
            self.inner.create_dir(p).await
        }
    }

    /// Fischer's condition: A looks, B looks, B writes and reads back (B holds), then
    /// A's slow write lands over B's lock and A reads its own lock back. Before the
    /// window rule A held too; now A refuses the lease, its lock keeps everyone out
    /// until it expires, and B learns at its next refresh that its lock was replaced.
    #[tokio::test(start_paused = true)]
    async fn a_lock_written_too_long_after_the_look_is_not_taken() {
        let shared = Arc::new(MemStore::new());
        let o = LeaseOptions {
            settle: Duration::from_millis(400),
            ttl: Duration::from_secs(20),
            refresh_every: Duration::from_secs(3),
            acquire_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(200),
            ..opts()
        };
        let slow: Arc<dyn Storage> = Arc::new(NoIfAbsent {
            inner: shared.clone(),
            write_delay: Duration::from_millis(1000),
        });
        let fast: Arc<dyn Storage> = Arc::new(NoIfAbsent {
            inner: shared.clone(),
            write_delay: Duration::ZERO,
        });
        let a = {
            let o = o.clone();
            tokio::spawn(async move { LeaseLock::acquire(slow, &dir(), o).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let b = LeaseLock::acquire(fast, &dir(), o.clone()).await.unwrap();
        let a = a.await.unwrap();
        assert!(
            matches!(a, Err(Error::Locked { .. })),
            "the late writer held the lease beside another holder: {:?}",
            a.map(|g| g.holder().to_string())
        );
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(
            b.check().await.is_err(),
            "the holder whose lock was replaced was told"
        );
    }

    #[tokio::test]
    async fn every_refresh_changes_the_lock_bytes() {
        // Content-hash versions (folder, nginx, lighttpd, rclone) change only if the
        // bytes do: identical refreshes would let others take a held lease over.
        let s: Arc<dyn Storage> = Arc::new(MemStore::default());
        let o = LeaseOptions {
            refresh_every: Duration::from_millis(20),
            ttl: Duration::from_secs(5),
            ..opts()
        };
        let g = LeaseLock::acquire(s.clone(), &dir(), o).await.unwrap();
        let path = LeaseLock::path(&dir()).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..4 {
            seen.insert(contents(s.as_ref(), &path).await.unwrap());
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        assert!(
            seen.len() >= 3,
            "refreshes rewrote identical bytes ({} distinct)",
            seen.len()
        );
        let info = LockInfo::decode(seen.iter().last().unwrap()).unwrap();
        assert_eq!(info.holder, g.holder());
        g.check().await.unwrap();
        g.release().await.unwrap();
    }

    #[test]
    fn lock_info_round_trips_and_rejects_garbage() {
        let i = LockInfo {
            holder: "abc".into(),
            label: "my\nlaptop".into(),
            ttl: Duration::from_secs(60),
        };
        let d = LockInfo::decode(&i.encode()).unwrap();
        assert_eq!(d.holder, "abc");
        assert_eq!(d.label, "my laptop");
        assert_eq!(d.ttl, Duration::from_secs(60));
        assert!(LockInfo::decode(b"hello").is_none());
        assert!(LockInfo::decode(b"syncfabric-lease 1\nttl_ms 5\n").is_none());
        assert!(LockInfo::decode(&[0xff, 0xfe]).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn second_holder_waits_for_release() {
        let s: Arc<dyn Storage> = Arc::new(MemStore::new());
        let a = LeaseLock::acquire(s.clone(), &dir(), opts()).await.unwrap();
        let lock = LeaseLock::path(&dir()).unwrap();
        let info = LockInfo::decode(&contents(s.as_ref(), &lock).await.unwrap()).unwrap();
        assert_eq!(info.holder, a.holder());
        let s2 = s.clone();
        let b = tokio::spawn(async move { LeaseLock::acquire(s2, &dir(), opts()).await });
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!b.is_finished());
        a.check().await.unwrap();
        a.release().await.unwrap();
        let b = b.await.unwrap().unwrap();
        let info = LockInfo::decode(&contents(s.as_ref(), &lock).await.unwrap()).unwrap();
        assert_eq!(info.holder, b.holder());
        b.release().await.unwrap();
        assert!(s.stat(&lock).await.unwrap().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_keeps_a_long_lease_alive() {
        let s: Arc<dyn Storage> = Arc::new(MemStore::new());
        let a = LeaseLock::acquire(s.clone(), &dir(), opts()).await.unwrap();
        let short = LeaseOptions {
            acquire_timeout: Duration::from_secs(300),
            ..opts()
        };
        // Five lease lengths later, the lock is still held (refreshed), so B gives up.
        let r = LeaseLock::acquire(s.clone(), &dir(), short).await;
        assert!(matches!(r, Err(Error::Locked { .. })), "{r:?}");
        assert!(a.is_held());
        a.check().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn work_under_a_healthy_lease_may_take_longer_than_the_lease() {
        let s: Arc<dyn Storage> = Arc::new(MemStore::new());
        let a = LeaseLock::acquire(s.clone(), &dir(), opts()).await.unwrap();
        let ttl = opts().ttl;
        assert!(a.valid_for() > Duration::ZERO && a.valid_for() <= ttl);
        let slow = async {
            tokio::time::sleep(ttl * 3).await;
            Ok(7)
        };
        assert_eq!(a.bounded(slow).await.unwrap(), 7);
        a.release().await.unwrap();
    }

    /// Another client overwrites the lock with its own, as a takeover would; returns
    /// the bytes it wrote.
    async fn steal(s: &dyn Storage) -> Vec<u8> {
        let thief = LockInfo {
            holder: "thief".into(),
            label: String::new(),
            ttl: Duration::from_secs(60),
        };
        s.write(
            &LeaseLock::path(&dir()).unwrap(),
            Body::from(thief.encode()),
            Precondition::None,
        )
        .await
        .unwrap();
        thief.encode()
    }

    #[tokio::test(start_paused = true)]
    async fn work_under_a_lost_lease_is_abandoned() {
        let s: Arc<dyn Storage> = Arc::new(MemStore::new());
        let a = LeaseLock::acquire(s.clone(), &dir(), opts()).await.unwrap();
        steal(s.as_ref()).await;
        // The next refresh finds the thief's lock: the never-ending write is dropped.
        let never = std::future::pending::<Result<()>>();
        let r = a.bounded(never).await;
        assert!(matches!(r, Err(Error::Locked { .. })), "{r:?}");
        assert_eq!(a.valid_for(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn crashed_holder_expires_after_one_lease() {
        let s: Arc<dyn Storage> = Arc::new(MemStore::new());
        let a = LeaseLock::acquire(s.clone(), &dir(), opts()).await.unwrap();
        drop(a); // crashed: no more refreshes, lock left behind
        let start = Instant::now();
        let b = LeaseLock::acquire(s.clone(), &dir(), opts()).await.unwrap();
        assert!(Instant::now() - start >= Duration::from_secs(60));
        b.check().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn server_clock_expires_an_old_lock_at_once() {
        let m = MemStore {
            server_clock: true,
            ..MemStore::new()
        };
        let lock = LeaseLock::path(&dir()).unwrap();
        let old = LockInfo {
            holder: "gone".into(),
            label: String::new(),
            ttl: Duration::from_secs(60),
        };
        m.write(&lock, Body::from(old.encode()), Precondition::None)
            .await
            .unwrap();
        assert!(m
            .inner
            .set_modified(&lock, SystemTime::now() - Duration::from_secs(3600)));
        let s: Arc<dyn Storage> = Arc::new(m);
        let start = Instant::now();
        let b = LeaseLock::acquire(s.clone(), &dir(), opts()).await.unwrap();
        assert!(Instant::now() - start < Duration::from_secs(60));
        b.check().await.unwrap();
        // The clock file was cleaned up.
        let names: Vec<_> = s
            .list(&dir())
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(names, vec![lock]);
    }

    #[tokio::test(start_paused = true)]
    async fn server_clock_credits_the_age_of_a_lock() {
        let m = MemStore {
            server_clock: true,
            ..MemStore::new()
        };
        let lock = LeaseLock::path(&dir()).unwrap();
        let old = LockInfo {
            holder: "stalled".into(),
            label: String::new(),
            ttl: Duration::from_secs(60),
        };
        m.write(&lock, Body::from(old.encode()), Precondition::None)
            .await
            .unwrap();
        assert!(m
            .inner
            .set_modified(&lock, SystemTime::now() - Duration::from_secs(50)));
        let s: Arc<dyn Storage> = Arc::new(m);
        let start = Instant::now();
        let b = LeaseLock::acquire(s.clone(), &dir(), opts()).await.unwrap();
        let waited = Instant::now() - start;
        assert!(waited >= Duration::from_secs(9), "{waited:?}");
        assert!(waited < Duration::from_secs(30), "{waited:?}");
        b.check().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_fresh_lock_is_not_expired_by_server_clock() {
        let m = MemStore {
            server_clock: true,
            ..MemStore::new()
        };
        let s: Arc<dyn Storage> = Arc::new(m);
        let _a = LeaseLock::acquire(s.clone(), &dir(), opts()).await.unwrap();
        let quick = LeaseOptions {
            acquire_timeout: Duration::from_secs(10),
            ..opts()
        };
        assert!(matches!(
            LeaseLock::acquire(s.clone(), &dir(), quick).await,
            Err(Error::Locked { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn stolen_lease_is_noticed() {
        let s: Arc<dyn Storage> = Arc::new(MemStore::new());
        let a = LeaseLock::acquire(s.clone(), &dir(), opts()).await.unwrap();
        let thief = steal(s.as_ref()).await;
        assert!(matches!(a.check().await, Err(Error::Locked { .. })));
        assert!(!a.is_held());
        a.release().await.unwrap();
        // The thief's lock is left alone.
        let lock = LeaseLock::path(&dir()).unwrap();
        assert_eq!(contents(s.as_ref(), &lock).await.unwrap(), thief);
    }

    /// N tasks × M increments under the lock, on a store that lies about every
    /// precondition (so the write/pause/read-back protocol is used).
    async fn counter_race(store: MemStore, caps_override: Option<Capabilities>) -> u64 {
        let inner: Arc<dyn Storage> = Arc::new(store);
        let s: Arc<dyn Storage> = match caps_override {
            Some(c) => Arc::new(crate::probe::ProbedStorage::new(inner, c)),
            None => inner,
        };
        let counter = dir().join("counter").unwrap();
        let ops = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let s = s.clone();
            let counter = counter.clone();
            let ops = ops.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..5 {
                    let o = LeaseOptions {
                        poll_interval: Duration::from_millis(200),
                        ..opts()
                    };
                    let g = LeaseLock::acquire(s.clone(), &dir(), o).await.unwrap();
                    let n: u64 = match contents(s.as_ref(), &counter).await {
                        Some(b) => String::from_utf8(b).unwrap().parse().unwrap(),
                        None => 0,
                    };
                    // Yield so the others get to contend.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    g.check().await.unwrap();
                    s.write(
                        &counter,
                        Body::from((n + 1).to_string().into_bytes()),
                        Precondition::None,
                    )
                    .await
                    .unwrap();
                    ops.fetch_add(1, Ordering::SeqCst);
                    g.release().await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let b = contents(s.as_ref(), &counter).await.unwrap();
        String::from_utf8(b).unwrap().parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn race_through_the_lock_with_honest_cas() {
        assert_eq!(counter_race(MemStore::new(), None).await, 20);
    }

    #[tokio::test(start_paused = true)]
    async fn race_through_the_lock_on_a_lying_store() {
        let caps = MemStore::lying().capabilities();
        let downgraded = Capabilities {
            if_match: false,
            if_absent: false,
            conditional_delete: false,
            ..caps
        };
        assert_eq!(counter_race(MemStore::lying(), Some(downgraded)).await, 20);
    }
}
