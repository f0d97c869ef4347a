//! Shared retry, backoff and pacing: the one place where "try again later" is decided.
//!
//! Providers do not write retry loops. They map each failure to the right [`Error`]
//! kind (with [`Error::from_http_status`] and [`parse_retry_after`] for HTTP services)
//! and either
//!
//! * wrap themselves in [`RetryingStorage`], which retries every `Storage` method, or
//! * call [`Retrier::run`] around the individual requests they send (useful when one
//!   `Storage` call is several requests, e.g. an upload session).
//!
//! The rules, in order:
//!
//! 1. Only [`Error::is_retryable`] errors (`RateLimited`, `Transient`, transient I/O)
//!    are retried; everything else is returned at once, unchanged.
//! 2. The wait before the next attempt is the service's `Retry-After` when it gave one,
//!    else the next step of an exponential backoff with jitter ([`RetryPolicy`], built
//!    on the `backon` crate).
//! 3. A `RateLimited` answer holds off the whole account: the [`Pacer`] (one per account,
//!    shared by every clone and by every [`Pacer::for_account`] with the same key) makes
//!    every call on that account — retries and fresh calls alike — wait until the
//!    requested time, so ten parallel calls don't turn one 429 into ten.
//! 4. Everything is bounded: at most [`RetryPolicy::max_attempts`] attempts, and never
//!    past [`RetryPolicy::max_total`] from the first attempt (a wait that would end
//!    after it is not started; the last error is returned instead, so a `Retry-After`
//!    of an hour fails fast with `RateLimited { retry_after: Some(1h) }`).
//!
//! ```
//! # async fn demo() -> syncfabric_core::Result<()> {
//! use syncfabric_core::retry::{Pacer, Retrier, RetryPolicy};
//! let retrier = Retrier::new(RetryPolicy::default(), Pacer::for_account("webdav:alice@host"));
//! let answer = retrier.run(|| async { Ok::<_, syncfabric_core::Error>(42) }).await?;
//! assert_eq!(answer, 42);
//! # Ok(()) }
//! ```

use crate::{Body, Download, Entry, Error, Precondition, RemotePath, Result, Storage};
use backon::BackoffBuilder;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime};
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

/// Parses an HTTP `Retry-After` header value in either form (RFC 9110 §10.2.3):
/// delta-seconds (`"120"`) or an HTTP-date (`"Wed, 21 Oct 2015 07:28:00 GMT"`, also the
/// obsolete RFC 850 and asctime forms), the latter relative to `now`. A date in the
/// past gives `Duration::ZERO`. Returns `None` for anything else (the caller then
/// falls back to its own backoff). Surrounding whitespace is ignored.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long digit strings saturate rather than fail.
        return Some(Duration::from_secs(v.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// How a [`Retrier`] retries. The defaults suit a person waiting for a sync: first
/// retry after ~0.5 s, doubling to at most 30 s, at most 8 attempts, and never more
/// than 2 minutes in all.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// The wait before the first retry (before jitter).
    pub min_delay: Duration,
    /// The longest wait between two attempts (before jitter).
    pub max_delay: Duration,
    /// Each wait is the previous one times this.
    pub factor: f32,
    /// Adds a random 0–100 % to each backoff wait, so clients that failed together
    /// don't retry together. (A service's `Retry-After` is honoured as given.)
    pub jitter: bool,
    /// The most attempts in all, the first one included (1 = never retry).
    pub max_attempts: usize,
    /// The longest time from the first attempt to giving up, waits included.
    pub max_total: Duration,
    /// A bound on each single attempt; an attempt that takes longer is abandoned as
    /// [`Error::Transient`]. `None` (the default) leaves timeouts to the provider, which
    /// knows how large its bodies are.
    pub attempt_timeout: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            factor: 2.0,
            jitter: true,
            max_attempts: 8,
            max_total: Duration::from_secs(120),
            attempt_timeout: None,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries (one attempt).
    pub fn never() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Default::default()
        }
    }

    /// The waits between attempts, one fewer than `max_attempts` (jittered when
    /// `jitter` is set), for a caller that runs its own attempts.
    pub fn delays(&self) -> impl Iterator<Item = Duration> {
        self.backoff()
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> {
        let mut b = backon::ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(self.factor)
            .with_max_times(self.max_attempts.saturating_sub(1));
        if self.jitter {
            b = b.with_jitter();
        }
        b.build()
    }
}

#[derive(Debug)]
struct PacerState {
    /// No call starts before this instant (set by `RateLimited`).
    not_before: Option<Instant>,
    /// When the last call was let through (for `min_interval`).
    last_start: Option<Instant>,
}

#[derive(Debug)]
struct PacerInner {
    min_interval: Duration,
    state: Mutex<PacerState>,
}

/// Paces the calls to one account: after a `RateLimited` answer no call on the account
/// starts before the time the service asked for, and (optionally) calls start at least
/// `min_interval` apart. Cloning shares the pacer.
#[derive(Clone, Debug)]
pub struct Pacer {
    inner: Arc<PacerInner>,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new()
    }
}

fn registry() -> &'static Mutex<HashMap<String, Weak<PacerInner>>> {
    static REG: OnceLock<Mutex<HashMap<String, Weak<PacerInner>>>> = OnceLock::new();
    REG.get_or_init(Default::default)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the state inconsistent (it is
    // only instants), so a poisoned lock is used as is.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pacer {
    /// A fresh pacer with no minimum interval, shared only by its clones.
    pub fn new() -> Self {
        Pacer::with_min_interval(Duration::ZERO)
    }

    /// A fresh pacer that also spaces the start of calls `min_interval` apart (for
    /// services with a documented request rate).
    pub fn with_min_interval(min_interval: Duration) -> Self {
        Pacer {
            inner: Arc::new(PacerInner {
                min_interval,
                state: Mutex::new(PacerState {
                    not_before: None,
                    last_start: None,
                }),
            }),
        }
    }

    /// The pacer of account `key` in this process (e.g. `"onedrive:<user id>"`): every
    /// call with the same key returns the same pacer while any clone of it is alive,
    /// so two storages opened on one account share one pacer. The key is only compared,
    /// never logged; it must not contain a secret anyway.
    pub fn for_account(key: &str) -> Self {
        let mut reg = lock(registry());
        if let Some(inner) = reg.get(key).and_then(Weak::upgrade) {
            return Pacer { inner };
        }
        reg.retain(|_, w| w.strong_count() > 0);
        let p = Pacer::new();
        reg.insert(key.to_string(), Arc::downgrade(&p.inner));
        p
    }

    /// True when `self` and `other` are the same shared pacer.
    pub fn same_as(&self, other: &Pacer) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Holds off every call on the account for `wait` from now (never shortens an
    /// earlier hold).
    pub fn hold_off(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut st = lock(&self.inner.state);
        st.not_before = Some(st.not_before.map_or(until, |n| n.max(until)));
    }

    /// Waits until a call may start, then records its start. If the wait would end
    /// after `deadline`, returns at once with the instant it would have ended.
    async fn ready_before(&self, deadline: Instant) -> std::result::Result<(), Instant> {
        loop {
            let target = {
                let mut st = lock(&self.inner.state);
                let now = Instant::now();
                let mut target = st.not_before.unwrap_or(now);
                if let Some(last) = st.last_start {
                    target = target.max(last + self.inner.min_interval);
                }
                if target <= now {
                    st.last_start = Some(now);
                    return Ok(());
                }
                target
            };
            if target > deadline {
                return Err(target);
            }
            tokio::time::sleep_until(target).await;
        }
    }

    /// Waits until a call on the account may start (no deadline).
    pub async fn ready(&self) {
        let far = Instant::now() + Duration::from_secs(60 * 60 * 24 * 365);
        let _ = self.ready_before(far).await;
    }
}

/// A [`RetryPolicy`] plus the account's [`Pacer`]: what runs each request.
#[derive(Clone, Debug, Default)]
pub struct Retrier {
    policy: RetryPolicy,
    pacer: Pacer,
}

impl Retrier {
    /// A retrier with this policy and pacer.
    pub fn new(policy: RetryPolicy, pacer: Pacer) -> Self {
        Retrier { policy, pacer }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The pacer (shared with every clone of this retrier).
    pub fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    /// Runs `op` until it succeeds, fails with a non-retryable error, or the policy's
    /// bounds are reached (see the [module docs](self) for the exact rules). Each
    /// attempt first waits for the pacer. Returns the last error when giving up; if the
    /// pacer holds the account past the deadline before any attempt could be made,
    /// returns `RateLimited` with the remaining hold as `retry_after`.
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let start = Instant::now();
        let deadline = start + self.policy.max_total;
        let mut backoff = self.policy.backoff();
        let mut last_err: Option<Error> = None;
        let mut attempt = 0usize;
        let mut told = false;
        loop {
            if let Err(until) = self.pacer.ready_before(deadline).await {
                return Err(last_err.unwrap_or_else(|| Error::RateLimited {
                    retry_after: Some(until.saturating_duration_since(Instant::now())),
                    message: "the account is held off after a rate-limit answer".into(),
                }));
            }
            attempt += 1;
            let res = match self.policy.attempt_timeout {
                Some(t) => match tokio::time::timeout(t, op()).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::transient(format!("attempt timed out after {t:?}"))),
                },
                None => op().await,
            };
            let err = match res {
                Ok(v) => return Ok(v),
                Err(e) if !e.is_retryable() => return Err(e),
                Err(e) => e,
            };
            // The backoff step is consumed on every retry, so it also counts attempts.
            let Some(step) = backoff.next() else {
                tracing::debug!(attempt, error = %err, "giving up: attempts exhausted");
                return Err(err);
            };
            let wait = err.retry_after().unwrap_or(step);
            if Instant::now()
                .checked_add(wait)
                .is_none_or(|t| t > deadline)
            {
                tracing::debug!(attempt, error = %err, ?wait, "giving up: wait ends past the deadline");
                return Err(err);
            }
            tracing::debug!(attempt, error = %err, ?wait, "retrying");
            if !told && start.elapsed() + wait >= QUIET_RETRYING {
                // A person waiting at a prompt is told why, and for how long at most.
                told = true;
                let left = deadline.saturating_duration_since(Instant::now()).as_secs();
                tracing::warn!("{err}; retrying for up to {left} s more");
            }
            if matches!(err, Error::RateLimited { .. }) {
                // Everyone on the account waits; the pacer wait at the top of the loop
                // is this call's sleep too.
                self.pacer.hold_off(wait);
            } else {
                tokio::time::sleep(wait).await;
            }
            last_err = Some(err);
        }
    }
}

/// How long retries go on before a warning says why (and for how long at most).
const QUIET_RETRYING: Duration = Duration::from_secs(5);

/// Shorthand for `Retrier::new(policy.clone(), pacer.clone()).run(op)`.
pub async fn retry<T, F, Fut>(policy: &RetryPolicy, pacer: &Pacer, op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    Retrier::new(policy.clone(), pacer.clone()).run(op).await
}

/// Any [`Storage`] with every method retried by a [`Retrier`].
///
/// `stat`, `list`, `read` (opening only: an error in the middle of the byte stream is
/// returned to the caller, who restarts the read), `create_dir` and unconditional
/// writes/deletes are simply retried. Conditional writes and deletes need care: when an
/// attempt failed in a way that may have hidden a success (any retryable error other
/// than `RateLimited`, e.g. the connection dropped after the server stored the body),
/// a later `AlreadyExists`/`PreconditionFailed` may be the echo of our own first
/// attempt. Then:
///
/// * a write reads the file back and, if its bytes equal the body's, returns success
///   with the stored entry (the bytes are what we meant to write). **Callers must make
///   every conditional write's bytes unique** where two writers could race from one
///   base: if another client wrote identical bytes in between, both are told they
///   succeeded, which is a lost update wherever the bytes alone do not carry all of
///   both writers' work (two counters incremented to the same value). The engine's
///   commits are unique (fresh ids and times in every database, a random commit
///   marker), and so are the conformance race's (a random tag in every write);
/// * an `IfMatch` delete returns success if the file is now gone.
///
/// Otherwise the precondition error is returned as is.
#[derive(Debug, Clone)]
pub struct RetryingStorage<S> {
    inner: S,
    retrier: Retrier,
}

impl<S: Storage> RetryingStorage<S> {
    /// Wraps `inner`; its calls go through `retrier` (and its pacer).
    pub fn new(inner: S, retrier: Retrier) -> Self {
        RetryingStorage { inner, retrier }
    }

    /// The wrapped storage.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The retrier.
    pub fn retrier(&self) -> &Retrier {
        &self.retrier
    }

    /// The entry at `path` if its content is exactly `body`.
    async fn landed(&self, path: &RemotePath, body: &Body) -> Result<Option<Entry>> {
        let Some(before) = self.retrier.run(|| self.inner.stat(path)).await? else {
            return Ok(None);
        };
        if before.size != body.len() {
            return Ok(None);
        }
        let dl = match self.retrier.run(|| self.inner.read(path)).await {
            Ok(d) => d,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let read_version = dl.version.clone();
        if !same_content(dl, body).await? {
            return Ok(None);
        }
        // Make sure the entry we return is the one whose bytes we compared.
        let after = self.retrier.run(|| self.inner.stat(path)).await?;
        match (after, read_version) {
            (Some(a), Some(v)) if a.version.as_ref() == Some(&v) => Ok(Some(a)),
            (Some(a), None) if a.version == before.version => Ok(Some(a)),
            _ => Ok(None),
        }
    }
}

/// Whether the downloaded bytes equal the body's, compared as they stream.
pub(crate) async fn same_content(mut dl: Download, body: &Body) -> Result<bool> {
    use futures_util::StreamExt;
    let mut local = body.open().await?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    while let Some(chunk) = dl.stream.next().await {
        let chunk = chunk?;
        let mut off = 0;
        while off < chunk.len() {
            let want = (chunk.len() - off).min(buf.len());
            let n = local
                .read(&mut buf[..want])
                .await
                .map_err(|e| Error::from_io(e, "write body"))?;
            if n == 0 || buf[..n] != chunk[off..off + n] {
                return Ok(false);
            }
            off += n;
        }
        total += chunk.len() as u64;
    }
    let n = local
        .read(&mut buf[..1])
        .await
        .map_err(|e| Error::from_io(e, "write body"))?;
    Ok(n == 0 && total == body.len())
}

/// Whether a failed attempt may have taken effect on the server.
fn ambiguous(e: &Error) -> bool {
    e.is_retryable() && !matches!(e, Error::RateLimited { .. })
}

#[async_trait::async_trait]
impl<S: Storage> Storage for RetryingStorage<S> {
    fn capabilities(&self) -> crate::Capabilities {
        self.inner.capabilities()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn stat(&self, path: &RemotePath) -> Result<Option<Entry>> {
        self.retrier.run(|| self.inner.stat(path)).await
    }

    async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>> {
        self.retrier.run(|| self.inner.list(dir)).await
    }

    async fn read(&self, path: &RemotePath) -> Result<Download> {
        self.retrier.run(|| self.inner.read(path)).await
    }

    async fn write(&self, path: &RemotePath, body: Body, pre: Precondition) -> Result<Entry> {
        let landed_flag = AtomicBool::new(false);
        let res = self
            .retrier
            .run(|| async {
                let r = self.inner.write(path, body.clone(), pre.clone()).await;
                if matches!(&r, Err(e) if ambiguous(e)) {
                    landed_flag.store(true, Ordering::Relaxed);
                }
                r
            })
            .await;
        let maybe_landed = landed_flag.load(Ordering::Relaxed);
        match res {
            Err(e @ (Error::AlreadyExists { .. } | Error::PreconditionFailed { .. }))
                if maybe_landed && pre != Precondition::None =>
            {
                match self.landed(path, &body).await? {
                    Some(entry) => Ok(entry),
                    None => Err(e),
                }
            }
            other => other,
        }
    }

    async fn delete(&self, path: &RemotePath, pre: Precondition) -> Result<()> {
        let landed_flag = AtomicBool::new(false);
        let res = self
            .retrier
            .run(|| async {
                let r = self.inner.delete(path, pre.clone()).await;
                if matches!(&r, Err(e) if ambiguous(e)) {
                    landed_flag.store(true, Ordering::Relaxed);
                }
                r
            })
            .await;
        let maybe_landed = landed_flag.load(Ordering::Relaxed);
        match res {
            Err(e @ Error::PreconditionFailed { .. }) if maybe_landed => {
                match self.retrier.run(|| self.inner.stat(path)).await? {
                    None => Ok(()),
                    Some(_) => Err(e),
                }
            }
            other => other,
        }
    }

    async fn create_dir(&self, path: &RemotePath) -> Result<()> {
        self.retrier.run(|| self.inner.create_dir(path)).await
    }

    async fn remove_empty_dir(&self, path: &RemotePath) -> Result<()> {
        self.retrier.run(|| self.inner.remove_empty_dir(path)).await
    }

    async fn watch(&self, dir: &RemotePath) -> Result<crate::watch::ChangeStream> {
        self.retrier.run(|| self.inner.watch(dir)).await
    }

    /// Retried like any call. A `LOCK` whose answer was lost may leave a lock this
    /// client cannot name, so the retry then meets `Locked`: providers whose locks can
    /// be looked up adopt their own (WebDAV matches the owner it wrote), others wait
    /// for it to expire like any other holder's.
    async fn lock_dir(&self, dir: &RemotePath, ttl: std::time::Duration) -> Result<crate::DirLock> {
        self.retrier.run(|| self.inner.lock_dir(dir, ttl)).await
    }

    /// Retried like [`Storage::lock_dir`]: a retry after a lost answer finds the lock
    /// as this owner's own (same process part) and adopts it.
    async fn lock_dir_as(
        &self,
        dir: &RemotePath,
        ttl: std::time::Duration,
        owner: &crate::LockOwner,
    ) -> Result<crate::DirLock> {
        self.retrier
            .run(|| self.inner.lock_dir_as(dir, ttl, owner))
            .await
    }

    async fn dir_locks(&self, dir: &RemotePath) -> Result<Vec<crate::LockHolder>> {
        self.retrier.run(|| self.inner.dir_locks(dir)).await
    }

    async fn refresh_lock(
        &self,
        lock: &crate::DirLock,
        ttl: std::time::Duration,
    ) -> Result<crate::DirLock> {
        self.retrier
            .run(|| self.inner.refresh_lock(lock, ttl))
            .await
    }

    async fn unlock_dir(&self, lock: &crate::DirLock) -> Result<()> {
        self.retrier.run(|| self.inner.unlock_dir(lock)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_store::MemStore;
    use std::collections::VecDeque;
    use std::sync::atomic::AtomicUsize;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_total: Duration::from_secs(60),
            ..Default::default()
        }
    }

    /// An operation that fails with the scripted errors, then succeeds; counts calls
    /// and records the (virtual) instant of each.
    struct Script {
        errors: Mutex<VecDeque<Error>>,
        calls: Mutex<Vec<Instant>>,
    }
    impl Script {
        fn new(errors: Vec<Error>) -> Arc<Self> {
            Arc::new(Script {
                errors: Mutex::new(errors.into()),
                calls: Mutex::new(Vec::new()),
            })
        }
        async fn call(&self) -> Result<&'static str> {
            self.calls.lock().unwrap().push(Instant::now());
            match self.errors.lock().unwrap().pop_front() {
                Some(e) => Err(e),
                None => Ok("done"),
            }
        }
        fn count(&self) -> usize {
            self.calls.lock().unwrap().len()
        }
    }

    #[test]
    fn retry_after_both_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(90))
        );
        // The obsolete RFC 850 form of the same instant.
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:20:00 GMT", now),
            Some(Duration::ZERO)
        );
        let d = parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now).unwrap();
        assert_eq!(d, Duration::from_secs(480));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(5));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn status_mapping() {
        assert!(matches!(
            Error::from_http_status(429, "p", None, ""),
            Error::RateLimited {
                retry_after: None,
                ..
            }
        ));
        assert!(matches!(
            Error::from_http_status(503, "p", None, ""),
            Error::Transient { .. }
        ));
        assert!(matches!(
            Error::from_http_status(503, "p", Some(Duration::from_secs(3)), ""),
            Error::RateLimited {
                retry_after: Some(_),
                ..
            }
        ));
        assert!(matches!(
            Error::from_http_status(412, "p", None, ""),
            Error::PreconditionFailed { .. }
        ));
        assert!(matches!(
            Error::from_http_status(401, "p", None, ""),
            Error::Unauthorized { .. }
        ));
        assert!(matches!(
            Error::from_http_status(404, "p", None, ""),
            Error::NotFound { .. }
        ));
        assert!(matches!(
            Error::from_http_status(507, "p", None, ""),
            Error::QuotaExceeded { .. }
        ));
        assert!(matches!(
            Error::from_http_status(400, "p", None, ""),
            Error::InvalidInput { .. }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limited_with_delta_seconds_waits_as_told() {
        let now = SystemTime::now();
        let e = Error::from_http_status(429, "f", parse_retry_after("7", now), "slow down");
        let s = Script::new(vec![e]);
        let start = Instant::now();
        let r = Retrier::new(policy(), Pacer::new()).run(|| s.call()).await;
        assert_eq!(r.unwrap(), "done");
        assert_eq!(s.count(), 2);
        let calls = s.calls.lock().unwrap().clone();
        assert!(calls[1] - start >= Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limited_with_http_date_waits_as_told() {
        let now = SystemTime::now();
        let header = httpdate::fmt_http_date(now + Duration::from_secs(30));
        let e = Error::from_http_status(429, "f", parse_retry_after(&header, now), "slow down");
        let s = Script::new(vec![e]);
        let start = Instant::now();
        Retrier::new(policy(), Pacer::new())
            .run(|| s.call())
            .await
            .unwrap();
        let calls = s.calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 2);
        // The date has one-second resolution.
        assert!(calls[1] - start >= Duration::from_secs(29));
    }

    #[tokio::test(start_paused = true)]
    async fn unavailable_without_retry_after_backs_off_exponentially() {
        let errs = (0..3)
            .map(|_| Error::from_http_status(503, "f", None, "busy"))
            .collect();
        let s = Script::new(errs);
        let pol = RetryPolicy {
            jitter: false,
            ..policy()
        };
        let r = Retrier::new(pol, Pacer::new()).run(|| s.call()).await;
        assert_eq!(r.unwrap(), "done");
        let calls = s.calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 4);
        let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[0] >= Duration::from_millis(500));
        assert!(gaps[1] >= gaps[0] * 2 - Duration::from_millis(1));
        assert!(gaps[2] >= gaps[1] * 2 - Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn non_retryable_errors_are_not_retried() {
        for e in [
            Error::PreconditionFailed { path: "f".into() },
            Error::Unauthorized {
                message: "expired".into(),
            },
            Error::NotFound { path: "f".into() },
            Error::Unsupported {
                message: "x".into(),
            },
        ] {
            let s = Script::new(vec![e]);
            let r = Retrier::new(policy(), Pacer::new()).run(|| s.call()).await;
            assert!(r.is_err());
            assert_eq!(s.count(), 1);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn total_time_is_bounded() {
        let errs = (0..1000).map(|_| Error::transient("down")).collect();
        let s = Script::new(errs);
        let pol = RetryPolicy {
            max_attempts: 1000,
            max_total: Duration::from_secs(10),
            ..Default::default()
        };
        let start = Instant::now();
        let r = Retrier::new(pol, Pacer::new()).run(|| s.call()).await;
        assert!(matches!(r, Err(Error::Transient { .. })));
        assert!(s.count() >= 3, "retried only {} times", s.count());
        assert!(s.count() < 1000);
        assert!(Instant::now() - start <= Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_are_bounded() {
        let errs = (0..100).map(|_| Error::transient("down")).collect();
        let s = Script::new(errs);
        let pol = RetryPolicy {
            max_attempts: 4,
            max_total: Duration::from_secs(3600),
            ..Default::default()
        };
        assert!(Retrier::new(pol, Pacer::new())
            .run(|| s.call())
            .await
            .is_err());
        assert_eq!(s.count(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_beyond_the_bound_fails_fast() {
        let e = Error::RateLimited {
            retry_after: Some(Duration::from_secs(3600)),
            message: "later".into(),
        };
        let s = Script::new(vec![e]);
        let start = Instant::now();
        let r = Retrier::new(policy(), Pacer::new()).run(|| s.call()).await;
        assert!(
            matches!(r, Err(Error::RateLimited { retry_after: Some(d), .. }) if d == Duration::from_secs(3600))
        );
        assert_eq!(s.count(), 1);
        assert_eq!(Instant::now(), start);
    }

    /// Found by fuzzing: `Retry-After: 99999999999999999999` saturates to u64::MAX
    /// seconds, which overflowed `Instant` (a panic) instead of failing fast.
    #[tokio::test(start_paused = true)]
    async fn retry_after_past_any_instant_fails_fast() {
        let ra = parse_retry_after("99999999999999999999", SystemTime::now());
        let e = Error::RateLimited {
            retry_after: ra,
            message: "never".into(),
        };
        let s = Script::new(vec![e]);
        let r = Retrier::new(policy(), Pacer::new()).run(|| s.call()).await;
        assert!(
            matches!(r, Err(Error::RateLimited { retry_after: Some(d), .. }) if d.as_secs() == u64::MAX)
        );
        assert_eq!(s.count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn one_pacer_per_account_holds_off_parallel_calls() {
        let a = Pacer::for_account("test-account-pacing");
        let b = Pacer::for_account("test-account-pacing");
        assert!(a.same_as(&b));
        assert!(!a.same_as(&Pacer::for_account("another-account")));

        // A server that answers 429 + Retry-After: 10 to any call in its first 10 s.
        let t0 = Instant::now();
        let hits = Arc::new(Mutex::new(Vec::<Duration>::new()));
        let server = move |hits: Arc<Mutex<Vec<Duration>>>| async move {
            let at = Instant::now() - t0;
            hits.lock().unwrap().push(at);
            if at < Duration::from_secs(10) {
                Err(Error::RateLimited {
                    retry_after: Some(Duration::from_secs(10) - at),
                    message: "429".into(),
                })
            } else {
                Ok(())
            }
        };
        let ra = Retrier::new(policy(), a);
        let rb = Retrier::new(policy(), b);
        let ha = hits.clone();
        let task_a = tokio::spawn(async move { ra.run(|| server(ha.clone())).await });
        let hb = hits.clone();
        let task_b = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            rb.run(|| server(hb.clone())).await
        });
        task_a.await.unwrap().unwrap();
        task_b.await.unwrap().unwrap();
        let hits = hits.lock().unwrap().clone();
        // One 429, then both calls after the hold: B never hit the server while held.
        assert_eq!(hits.len(), 3, "{hits:?}");
        assert_eq!(
            hits.iter()
                .filter(|t| **t < Duration::from_secs(10))
                .count(),
            1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn min_interval_spaces_calls() {
        let p = Pacer::with_min_interval(Duration::from_secs(2));
        let start = Instant::now();
        for _ in 0..3 {
            p.ready().await;
        }
        assert!(Instant::now() - start >= Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn attempt_timeout_is_transient_and_retried() {
        let n = AtomicUsize::new(0);
        let pol = RetryPolicy {
            attempt_timeout: Some(Duration::from_secs(5)),
            ..policy()
        };
        let r = Retrier::new(pol, Pacer::new())
            .run(|| async {
                if n.fetch_add(1, Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                Ok(())
            })
            .await;
        assert!(r.is_ok());
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    /// A storage that fails scripted write calls: `Lost` stores the body, then reports
    /// a transient failure (the response was lost); `Fail` fails before storing.
    #[derive(Debug)]
    enum Fault {
        Lost,
        Fail,
    }
    #[derive(Debug)]
    struct Flaky {
        inner: MemStore,
        faults: Mutex<VecDeque<Fault>>,
        writes: AtomicUsize,
    }
    #[async_trait::async_trait]
    impl Storage for Flaky {
        fn capabilities(&self) -> crate::Capabilities {
            self.inner.capabilities()
        }
        fn describe(&self) -> String {
            "flaky".into()
        }
        async fn stat(&self, p: &RemotePath) -> Result<Option<Entry>> {
            self.inner.stat(p).await
        }
        async fn list(&self, p: &RemotePath) -> Result<Vec<Entry>> {
            self.inner.list(p).await
        }
        async fn read(&self, p: &RemotePath) -> Result<Download> {
            self.inner.read(p).await
        }
        async fn write(&self, p: &RemotePath, b: Body, pre: Precondition) -> Result<Entry> {
            self.writes.fetch_add(1, Ordering::SeqCst);
            let fault = self.faults.lock().unwrap().pop_front();
            match fault {
                Some(Fault::Fail) => Err(Error::transient("reset before send")),
                Some(Fault::Lost) => {
                    self.inner.write(p, b, pre).await?;
                    Err(Error::transient("reset after send"))
                }
                None => self.inner.write(p, b, pre).await,
            }
        }
        async fn delete(&self, p: &RemotePath, pre: Precondition) -> Result<()> {
            let fault = self.faults.lock().unwrap().pop_front();
            match fault {
                Some(Fault::Fail) => Err(Error::transient("reset before send")),
                Some(Fault::Lost) => {
                    self.inner.delete(p, pre).await?;
                    Err(Error::transient("reset after send"))
                }
                None => self.inner.delete(p, pre).await,
            }
        }
        async fn create_dir(&self, p: &RemotePath) -> Result<()> {
            self.inner.create_dir(p).await
        }
    }
    fn flaky(faults: Vec<Fault>) -> RetryingStorage<Flaky> {
        let f = Flaky {
            inner: MemStore::new(),
            faults: Mutex::new(faults.into()),
            writes: AtomicUsize::new(0),
        };
        RetryingStorage::new(f, Retrier::new(policy(), Pacer::new()))
    }
    fn path() -> RemotePath {
        RemotePath::parse("d/f").unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn lost_response_of_if_absent_write_is_recognised() {
        let s = flaky(vec![Fault::Lost]);
        let e = s
            .write(
                &path(),
                Body::from(b"mine".to_vec()),
                Precondition::IfAbsent,
            )
            .await
            .unwrap();
        assert_eq!(s.inner().writes.load(Ordering::SeqCst), 2);
        assert_eq!(s.stat(&path()).await.unwrap().unwrap().version, e.version);
    }

    #[tokio::test(start_paused = true)]
    async fn lost_response_of_if_match_write_is_recognised() {
        let s = flaky(vec![]);
        let v1 = s
            .write(&path(), Body::from(b"one".to_vec()), Precondition::None)
            .await
            .unwrap();
        s.inner().faults.lock().unwrap().push_back(Fault::Lost);
        let v2 = s
            .write(
                &path(),
                Body::from(b"two".to_vec()),
                Precondition::IfMatch(v1.version.unwrap()),
            )
            .await
            .unwrap();
        assert_eq!(s.stat(&path()).await.unwrap().unwrap().version, v2.version);
    }

    #[tokio::test(start_paused = true)]
    async fn real_conflict_after_a_transient_failure_stays_a_conflict() {
        let s = flaky(vec![]);
        s.write(&path(), Body::from(b"theirs".to_vec()), Precondition::None)
            .await
            .unwrap();
        s.inner().faults.lock().unwrap().push_back(Fault::Fail);
        let r = s
            .write(
                &path(),
                Body::from(b"mine!!".to_vec()),
                Precondition::IfAbsent,
            )
            .await;
        assert!(matches!(r, Err(Error::AlreadyExists { .. })), "{r:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn lost_response_of_conditional_delete_is_success() {
        let s = flaky(vec![]);
        let v = s
            .write(&path(), Body::from(b"x".to_vec()), Precondition::None)
            .await
            .unwrap();
        s.inner().faults.lock().unwrap().push_back(Fault::Lost);
        s.delete(&path(), Precondition::IfMatch(v.version.unwrap()))
            .await
            .unwrap();
        assert!(s.stat(&path()).await.unwrap().is_none());
    }
}
