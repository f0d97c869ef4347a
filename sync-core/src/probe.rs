//! The honesty probe: test a provider's precondition claims on this connection.
//!
//! Some servers accept a conditional write they do not check (nginx and `rclone serve`
//! ignore `If-Match` on PUT; Apache mod_dav hands out weak ETags for about a second).
//! A dropped precondition is a lost update, so at connect time the engine runs
//! [`probe`] in a scratch folder and trusts only what it confirmed:
//!
//! 1. write a probe file again and again, same size, different contents, back to back,
//!    until `k` writes with distinct versions fit in under `k - 2` seconds (so a
//!    whole-second clock gave two of them the same second): versions are strong only
//!    then; any repeat, or writes too slow to prove it, and they are not (`IfMatch`
//!    cannot protect anything, and [`Capabilities::strong_versions`] is switched off);
//! 2. write it with a made-up `IfMatch` version, and with the *previous* real version:
//!    both must fail with `PreconditionFailed` (or `Unsupported`);
//! 3. write it with `IfAbsent`: must fail with `AlreadyExists` (or `Unsupported`);
//! 4. the content must still be the second write's; a write with the *current*
//!    version and an `IfAbsent` write of a fresh file must succeed;
//! 5. delete it with a stale `IfMatch`: must fail with `PreconditionFailed`
//!    (or `Unsupported`);
//! 6. a write cut mid-body: a third probe file, written whole first, is written again
//!    with a [`Body::Stream`] that yields [`CUT_SENT`] of its [`CUT_LEN`] bytes, pauses
//!    so they reach the server, and then fails. The write must fail, and the file must
//!    still hold its previous whole content ([`ProbeReport::atomic_writes`]). A server
//!    that writes a PUT in place (rclone, wsgidav) leaves a truncated file unless the
//!    provider uploads to a temporary name and moves it into place;
//! 7. where the provider claims a server-enforced lock ([`Storage::lock_dir`]): lock
//!    the probe folder; a second lock must fail with `Locked`, a write without the
//!    lock must fail with `Locked`, a write under it must succeed, a write under a
//!    made-up lock must fail, and after the release a plain write must succeed;
//! 8. clean up every probe file, whatever happened.
//!
//! Each claim that failed is switched off in [`ProbeReport::effective`]; wrap the
//! storage in [`ProbedStorage`] so the rest of the program sees only those. A claim is
//! only ever downgraded, never upgraded.
//!
//! ```
//! # async fn demo(storage: &dyn syncfabric_core::Storage) -> syncfabric_core::Result<()> {
//! use syncfabric_core::{probe::probe, RemotePath};
//! let report = probe(storage, &RemotePath::parse(".syncfabric")?).await?;
//! if !report.effective.has_truthful_cas() {
//!     // use the lease lock (syncfabric_core::lock) around every commit
//! }
//! # Ok(()) }
//! ```

use crate::{Body, Capabilities, Entry, Error, Precondition, RemotePath, Result, Storage, Version};
use bytes::Bytes;
use futures_util::StreamExt;
use std::time::Duration;

/// The length the cut write of step 6 declares.
pub const CUT_LEN: u64 = 256 * 1024;
/// How many bytes the cut write of step 6 sends before its body fails.
pub const CUT_SENT: u64 = 64 * 1024;
/// How long the cut body waits between its bytes and its failure, so the bytes leave
/// the client (an HTTP client that sees the failure first may never send them), and
/// how long the probe waits after the failure before it reads the file back (a server
/// may still be handling the aborted request).
const CUT_PAUSE: Duration = Duration::from_millis(300);

/// What the probe saw for one kind of precondition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Wrong conditions were refused with the right error, right ones accepted.
    Honoured,
    /// The provider answered `Unsupported` (honest, but no help).
    Unsupported,
    /// A wrong condition was accepted: the storage ignores it (a lie).
    Ignored,
    /// Something else was wrong (a correct condition refused, the wrong error kind,
    /// content changed by a refused write); the text says what.
    Broken(String),
    /// Not tested (an earlier step made the test meaningless).
    Untested,
}

impl Verdict {
    fn usable(&self) -> bool {
        matches!(self, Verdict::Honoured)
    }
}

/// The outcome of [`probe`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeReport {
    /// What the provider claimed.
    pub claimed: Capabilities,
    /// The claims confirmed on this connection: `claimed` with `if_match`, `if_absent`,
    /// `conditional_delete`, `read_after_write`, `server_lock` and `strong_versions`
    /// switched off where the probe failed.
    pub effective: Capabilities,
    /// Three same-size writes in a row each got a new version.
    pub strong_versions: bool,
    /// `IfMatch` on write.
    pub if_match: Verdict,
    /// `IfAbsent` on write.
    pub if_absent: Verdict,
    /// `IfMatch` on delete.
    pub conditional_delete: Verdict,
    /// A read right after a write returned the new bytes.
    pub read_after_write: bool,
    /// The server-enforced folder lock ([`Storage::lock_dir`]); `Untested` when the
    /// provider does not claim one.
    pub server_lock: Verdict,
    /// A write cut mid-body failed and left the file's previous content whole (step 6).
    /// `false` means a cut upload can leave a truncated file on this storage as the
    /// provider drives it: every write there must go to a temporary name and be moved
    /// into place. Not a capability: nothing is switched off in `effective`.
    pub atomic_writes: bool,
}

impl ProbeReport {
    /// True when nothing the provider claimed had to be switched off, and it accepted
    /// no wrong precondition (even one it did not claim to support: silently dropping
    /// a precondition breaks the contract either way).
    pub fn is_truthful(&self) -> bool {
        self.claimed == self.effective
            && ![&self.if_match, &self.if_absent, &self.conditional_delete]
                .contains(&&Verdict::Ignored)
            && self.server_lock != Verdict::Ignored
    }

    /// One line per finding, for logs and the CLI.
    pub fn summary(&self) -> String {
        format!(
            "strong versions: {}; if-match: {:?}; if-absent: {:?}; conditional delete: {:?}; read-after-write: {}; server lock: {:?}; cut write keeps the old content: {}; truthful: {}",
            self.strong_versions,
            self.if_match,
            self.if_absent,
            self.conditional_delete,
            self.read_after_write,
            self.server_lock,
            self.atomic_writes,
            self.is_truthful()
        )
    }
}

async fn read_all(storage: &dyn Storage, path: &RemotePath) -> Result<Bytes> {
    let mut dl = storage.read(path).await?;
    let mut out = Vec::new();
    while let Some(chunk) = dl.stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out.into())
}

fn version_of(e: &Entry, path: &RemotePath) -> Result<Version> {
    e.version.clone().ok_or_else(|| Error::Corrupt {
        message: format!("{path}: a file write returned no version"),
    })
}

/// How a write with a deliberately wrong precondition went.
fn judge_refusal(r: Result<Entry>, expected: fn(&Error) -> bool, what: &str) -> Result<Verdict> {
    match r {
        Ok(_) => Ok(Verdict::Ignored),
        Err(Error::Unsupported { .. }) => Ok(Verdict::Unsupported),
        Err(e) if expected(&e) => Ok(Verdict::Honoured),
        Err(e) if e.is_retryable() || matches!(e, Error::Unauthorized { .. }) => Err(e),
        Err(e) => Ok(Verdict::Broken(format!(
            "{what} failed with the wrong kind: {e}"
        ))),
    }
}

/// Runs the honesty probe in folder `dir` (created if needed) of `storage`; see the
/// [module docs](self) for the steps. Every probe file is named
/// `.syncfabric-probe-<random>` and deleted before returning, also on error.
///
/// Returns an error only when the probe could not run (the storage failed with a
/// retryable error, `Unauthorized`, or refused a plain write); a storage that lies is a
/// successful probe with a report saying so.
pub async fn probe(storage: &dyn Storage, dir: &RemotePath) -> Result<ProbeReport> {
    let tag = format!("{:016x}", fastrand::u64(..));
    let main = dir.join(&format!(".syncfabric-probe-{tag}"))?;
    let fresh = dir.join(&format!(".syncfabric-probe-{tag}-new"))?;
    let cut = dir.join(&format!(".syncfabric-probe-{tag}-cut"))?;
    let res = async {
        // Written first, so it is not brand new when it is cut (rclone waits for a
        // file's content to be two seconds old before writing it again).
        let whole = Bytes::from(format!("syncfabric cut-write probe {tag}: whole\n"));
        storage
            .write(&cut, Body::Bytes(whole.clone()), Precondition::None)
            .await?;
        let mut report = run_probe(storage, &main, &fresh, &tag).await?;
        report.atomic_writes = probe_cut_write(storage, &cut, &whole).await?;
        if report.claimed.server_lock {
            let v = probe_server_lock(storage, dir, &main, &fresh, &tag).await?;
            report.effective.server_lock = v.usable();
            report.server_lock = v;
        }
        log_report(storage, &report);
        Ok(report)
    }
    .await;
    for p in [&main, &fresh, &cut] {
        match storage.delete(p, Precondition::None).await {
            Ok(()) | Err(Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!(path = %p, error = %e, "could not remove a probe file"),
        }
    }
    res
}

/// What step 1 found.
struct Burst {
    /// Writes landing within one second were proven to get distinct versions.
    strong: bool,
    /// The versions of the writes, in order (at least two).
    versions: Vec<Version>,
    /// The content number of the last write.
    last: u8,
}

/// The most writes step 1 makes.
const BURST_MAX: usize = 12;

/// Step 1: writes the probe file again and again with contents of one size until the
/// run proves whether versions are strong. Any two writes with the same version: not
/// strong. Strong only once `k` consecutive writes, all with distinct versions, fit in
/// less than `k - 2` seconds (from the first one's start to the last one's end): a
/// whole-second clock then gave at least two of them the same second, so a tag built
/// from the size and a whole-second time would have repeated; or, where the provider
/// spaces its writes a second apart ([`Capabilities::spaced_writes`]), once three in
/// a row were seen that far apart. Writes too slow for either prove nothing: not
/// strong (the engine's commit marker costs one small write; trusting an unproven
/// version can cost an edit).
async fn same_size_burst(
    storage: &dyn Storage,
    main: &RemotePath,
    text: &dyn Fn(u8) -> Bytes,
) -> Result<Burst> {
    let spaced = storage.capabilities().spaced_writes;
    let mut versions = Vec::with_capacity(BURST_MAX);
    let mut spans = Vec::with_capacity(BURST_MAX);
    // Two-digit numbers: every content has the same size, and no two are alike (a
    // server whose tag hashes the content repeats it for equal contents, rightly).
    for n in 10..10 + BURST_MAX as u8 {
        let start = std::time::Instant::now();
        let e = storage
            .write(main, Body::Bytes(text(n)), Precondition::None)
            .await?;
        let v = version_of(&e, main)?;
        spans.push((start, std::time::Instant::now()));
        if versions.contains(&v) {
            versions.push(v);
            return Ok(Burst {
                strong: false,
                versions,
                last: n,
            });
        }
        versions.push(v);
        if proven_strong(&spans, spaced) {
            return Ok(Burst {
                strong: true,
                versions,
                last: n,
            });
        }
        // Slower than a second a write: no run of these can prove it.
        let end = spans[spans.len() - 1].1;
        let per_write = end.duration_since(spans[0].0) / spans.len() as u32;
        if spans.len() >= 3 && per_write > std::time::Duration::from_secs(1) {
            break;
        }
    }
    tracing::warn!(
        writes = versions.len(),
        "the probe's writes were too slow to prove that versions never repeat within a second; treating them as repeating"
    );
    let last = 10 + versions.len() as u8 - 1;
    Ok(Burst {
        strong: false,
        versions,
        last,
    })
}

/// Whether the writes timed in `spans` (start, end), all with distinct versions, prove
/// strong versions: `k` consecutive ones within `k - 2` seconds; or, where the provider
/// claims [`Capabilities::spaced_writes`], three in a row each ending at least 0.9 s
/// after the one before (the spacing checked, not taken on trust).
fn proven_strong(spans: &[(std::time::Instant, std::time::Instant)], spaced: bool) -> bool {
    let second = std::time::Duration::from_secs(1);
    let end = spans[spans.len() - 1].1;
    let burst = (3..=spans.len()).any(|k| {
        let first = spans[spans.len() - k].0;
        end.duration_since(first) < second * (k as u32 - 2)
    });
    let apart = spans.len() >= 3
        && spans
            .windows(2)
            .all(|w| w[1].1.duration_since(w[0].1) >= second * 9 / 10);
    burst || (spaced && apart)
}

async fn run_probe(
    storage: &dyn Storage,
    main: &RemotePath,
    fresh: &RemotePath,
    tag: &str,
) -> Result<ProbeReport> {
    let claimed = storage.capabilities();
    let text = |n: u8| Bytes::from(format!("syncfabric honesty probe {tag} #{n}\n"));
    let body = |n: u8| Body::Bytes(text(n));

    let burst = same_size_burst(storage, main, &text).await?;
    let strong_versions = burst.strong;
    let n = burst.versions.len();
    let (v1, v2) = (burst.versions[n - 2].clone(), burst.versions[n - 1].clone());
    let read_after_write = read_all(storage, main).await? == text(burst.last);
    // What the file should hold: the last write that was accepted.
    let mut expected = text(burst.last);

    // IfMatch with a made-up version, then with the previous real one.
    let bogus = Version::new(format!("syncfabric-probe-wrong-{tag}"));
    let is_pf = |e: &Error| matches!(e, Error::PreconditionFailed { .. });
    let mut if_match = judge_refusal(
        storage
            .write(main, body(3), Precondition::IfMatch(bogus))
            .await,
        is_pf,
        "IfMatch with a made-up version",
    )?;
    if if_match == Verdict::Ignored {
        expected = text(3);
    }
    if if_match == Verdict::Honoured && strong_versions {
        if_match = judge_refusal(
            storage
                .write(main, body(4), Precondition::IfMatch(v1.clone()))
                .await,
            is_pf,
            "IfMatch with the previous version",
        )?;
        if if_match == Verdict::Ignored {
            expected = text(4);
        }
    } else if !strong_versions && if_match == Verdict::Honoured {
        if_match = Verdict::Broken("two writes in a row got the same version".into());
    }
    let after_if_match = read_all(storage, main).await?;
    if after_if_match != expected && if_match != Verdict::Ignored {
        if_match = Verdict::Broken("a refused IfMatch write changed the content".into());
        expected = after_if_match;
    }

    let is_ae = |e: &Error| matches!(e, Error::AlreadyExists { .. });
    let mut if_absent = judge_refusal(
        storage.write(main, body(5), Precondition::IfAbsent).await,
        is_ae,
        "IfAbsent on an existing file",
    )?;
    if if_absent == Verdict::Ignored {
        expected = text(5);
    }
    if read_all(storage, main).await? != expected && if_absent != Verdict::Ignored {
        if_absent = Verdict::Broken("a refused IfAbsent write changed the content".into());
    }

    // Correct conditions must be accepted.
    let mut current = storage
        .stat(main)
        .await?
        .and_then(|e| e.version)
        .unwrap_or(v2);
    if if_match == Verdict::Honoured {
        match storage
            .write(main, body(6), Precondition::IfMatch(current.clone()))
            .await
        {
            Ok(e) => current = version_of(&e, main)?,
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => {
                if_match =
                    Verdict::Broken(format!("IfMatch with the current version was refused: {e}"))
            }
        }
    }
    if if_absent == Verdict::Honoured {
        match storage.write(fresh, body(7), Precondition::IfAbsent).await {
            Ok(_) => {}
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => {
                if_absent = Verdict::Broken(format!("IfAbsent on a new file was refused: {e}"))
            }
        }
    }

    let conditional_delete = if strong_versions {
        probe_stale_delete(storage, main, v1, &current).await?
    } else {
        Verdict::Untested
    };

    let mut effective = claimed.clone();
    effective.if_match &= if_match.usable();
    effective.if_absent &= if_absent.usable();
    effective.conditional_delete &= conditional_delete.usable();
    effective.read_after_write &= read_after_write;
    effective.strong_versions &= strong_versions;
    let report = ProbeReport {
        claimed,
        effective,
        strong_versions,
        if_match,
        if_absent,
        conditional_delete,
        read_after_write,
        server_lock: Verdict::Untested,
        atomic_writes: false,
    };
    Ok(report)
}

/// Step 5: deletes `main` with the stale version `stale`; the file (at `current`) must
/// stay.
async fn probe_stale_delete(
    storage: &dyn Storage,
    main: &RemotePath,
    stale: Version,
    current: &Version,
) -> Result<Verdict> {
    Ok(
        match storage.delete(main, Precondition::IfMatch(stale)).await {
            Ok(()) => match storage.stat(main).await? {
                None => Verdict::Ignored,
                Some(_) => Verdict::Broken("a refused delete reported success".into()),
            },
            Err(Error::Unsupported { .. }) => Verdict::Unsupported,
            Err(Error::PreconditionFailed { .. }) => match storage.stat(main).await? {
                Some(e) if e.version.as_ref() == Some(current) => Verdict::Honoured,
                _ => Verdict::Broken("a refused delete changed the file".into()),
            },
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => Verdict::Broken(format!(
                "a stale conditional delete failed with the wrong kind: {e}"
            )),
        },
    )
}

/// Yields [`CUT_SENT`] bytes, pauses ([`CUT_PAUSE`]), then fails: a body of
/// [`CUT_LEN`] bytes whose upload is cut mid-way.
fn cut_body() -> Body {
    Body::from_stream(CUT_LEN, || {
        let bytes = Bytes::from(vec![b'x'; CUT_SENT as usize]);
        Box::pin(futures_util::stream::unfold(0u8, move |step| {
            let bytes = bytes.clone();
            async move {
                match step {
                    0 => Some((Ok(bytes), 1)),
                    1 => {
                        tokio::time::sleep(CUT_PAUSE).await;
                        let cut = Error::Io {
                            path: "honesty probe body".into(),
                            source: std::io::Error::other("upload cut on purpose by the probe"),
                        };
                        Some((Err(cut), 2))
                    }
                    _ => None,
                }
            }
        }))
    })
}

/// Step 6 of the probe: writes `path` (which holds `whole`) with a body that fails
/// mid-way; true when the write failed and `path` still holds `whole`.
async fn probe_cut_write(storage: &dyn Storage, path: &RemotePath, whole: &Bytes) -> Result<bool> {
    match storage.write(path, cut_body(), Precondition::None).await {
        Ok(e) => {
            tracing::warn!(%path, size = e.size, "a write whose body failed half-way was reported as done");
            return Ok(false);
        }
        Err(e) => tracing::debug!(%path, error = %e, "the cut write failed, as it should"),
    }
    // The server may still be handling the aborted request: give it a moment, then
    // read (a read that races an in-place writer may itself break off: retry it).
    tokio::time::sleep(CUT_PAUSE).await;
    let mut attempt = 0;
    let now = loop {
        match read_all(storage, path).await {
            Ok(b) => break Some(b),
            Err(Error::NotFound { .. }) => break None,
            Err(e) if e.is_retryable() && attempt < 3 => {
                attempt += 1;
                tokio::time::sleep(CUT_PAUSE).await;
            }
            Err(e) => return Err(e),
        }
    };
    let kept = now.as_ref() == Some(whole);
    if !kept {
        tracing::warn!(
            %path,
            now = ?now.map(|b| b.len()),
            before = whole.len(),
            "a write cut mid-body did not leave the previous content whole"
        );
    }
    Ok(kept)
}

fn log_report(storage: &dyn Storage, report: &ProbeReport) {
    if report.is_truthful() && report.atomic_writes {
        tracing::debug!(storage = %storage.describe(), "honesty probe: {}", report.summary());
    } else {
        tracing::warn!(storage = %storage.describe(), "honesty probe found a problem: {}", report.summary());
    }
}

/// Step 6 of the probe: is the folder lock really enforced by the server? Locks `dir`
/// (the probe folder), so it runs after the other steps and releases before cleanup.
async fn probe_server_lock(
    storage: &dyn Storage,
    dir: &RemotePath,
    main: &RemotePath,
    fresh: &RemotePath,
    tag: &str,
) -> Result<Verdict> {
    let body = |n: u8| Body::Bytes(Bytes::from(format!("syncfabric lock probe {tag} #{n}\n")));
    storage.write(main, body(1), Precondition::None).await?;
    let ttl = std::time::Duration::from_secs(60);
    // Another device may be probing the same folder: wait a little for its lock.
    let mut lock = None;
    for attempt in 0..10u32 {
        match storage.lock_dir(dir, ttl).await {
            Ok(l) => {
                lock = Some(l);
                break;
            }
            Err(Error::Unsupported { .. }) => return Ok(Verdict::Unsupported),
            Err(Error::Locked { .. }) if attempt < 9 => {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await
            }
            Err(e) if e.is_retryable() || matches!(e, Error::Unauthorized { .. }) => return Err(e),
            Err(e) => return Ok(Verdict::Broken(format!("lock_dir failed: {e}"))),
        }
    }
    let Some(lock) = lock else {
        return Ok(Verdict::Broken(
            "the probe folder stayed locked by another client".into(),
        ));
    };
    let verdict = judge_lock(storage, dir, main, fresh, &lock, ttl, &body, tag).await;
    match storage.unlock_dir(&lock).await {
        Ok(()) => {}
        Err(e) if verdict.is_ok() => return Err(e),
        Err(_) => {}
    }
    let verdict = verdict?;
    if verdict != Verdict::Honoured {
        return Ok(verdict);
    }
    // Released: a plain write goes through again.
    match storage.write(main, body(6), Precondition::None).await {
        Ok(_) => Ok(Verdict::Honoured),
        Err(e) if e.is_retryable() => Err(e),
        Err(e) => Ok(Verdict::Broken(format!(
            "a write after the release was refused: {e}"
        ))),
    }
}

#[allow(clippy::too_many_arguments)]
async fn judge_lock(
    storage: &dyn Storage,
    dir: &RemotePath,
    main: &RemotePath,
    fresh: &RemotePath,
    lock: &crate::DirLock,
    ttl: std::time::Duration,
    body: &dyn Fn(u8) -> Body,
    tag: &str,
) -> Result<Verdict> {
    let is_locked = |e: &Error| matches!(e, Error::Locked { .. });
    match storage.lock_dir(dir, ttl).await {
        Ok(second) => {
            let _ = storage.unlock_dir(&second).await;
            return Ok(Verdict::Ignored);
        }
        Err(e) if is_locked(&e) => {}
        Err(e) if e.is_retryable() => return Err(e),
        Err(e) => {
            return Ok(Verdict::Broken(format!(
                "a second lock failed with the wrong kind: {e}"
            )))
        }
    }
    let v = judge_refusal(
        storage.write(main, body(2), Precondition::None).await,
        is_locked,
        "a write without the lock",
    )?;
    if v != Verdict::Honoured {
        return Ok(v);
    }
    match storage
        .write(main, body(3), Precondition::UnderLock(lock.clone()))
        .await
    {
        Ok(_) => {}
        Err(e) if e.is_retryable() => return Err(e),
        Err(e) => {
            return Ok(Verdict::Broken(format!(
                "a write under the lock was refused: {e}"
            )))
        }
    }
    let forged = crate::DirLock::new(
        dir.clone(),
        // Well-formed (a UUID, as RFC 4918 lock tokens are; Apache answers 400 to a
        // token that is not one) but unknown to the server.
        format!(
            "opaquelocktoken:{}-{}-4000-8000-{}0000",
            &tag[..8],
            &tag[8..12],
            &tag[4..12]
        ),
        ttl,
    );
    judge_refusal(
        storage
            .write(fresh, body(4), Precondition::UnderLock(forged))
            .await,
        |e| matches!(e, Error::Locked { .. } | Error::PreconditionFailed { .. }),
        "a write under a made-up lock",
    )
}

/// A storage seen through the capabilities the probe confirmed.
///
/// [`Storage::capabilities`] returns `effective`; a write or delete with a
/// precondition whose capability is off returns [`Error::Unsupported`] without reaching
/// the inner storage (the contract: a precondition that cannot be honoured is refused,
/// never silently dropped). Everything else passes through.
#[derive(Debug, Clone)]
pub struct ProbedStorage<S> {
    inner: S,
    effective: Capabilities,
}

impl<S: Storage> ProbedStorage<S> {
    /// Wraps `inner` with the capabilities of a probe report (`report.effective`).
    pub fn new(inner: S, effective: Capabilities) -> Self {
        ProbedStorage { inner, effective }
    }

    /// Probes `inner` in `dir` and wraps it with the outcome.
    pub async fn connect(inner: S, dir: &RemotePath) -> Result<(Self, ProbeReport)> {
        let report = probe(&inner, dir).await?;
        Ok((ProbedStorage::new(inner, report.effective.clone()), report))
    }

    /// The wrapped storage.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn refuse(&self, what: &str, path: &RemotePath) -> Error {
        Error::Unsupported {
            message: format!(
                "{}: {what} is not honoured by this server ({path}); use the lease lock",
                self.inner.describe()
            ),
        }
    }
}

#[async_trait::async_trait]
impl<S: Storage> Storage for ProbedStorage<S> {
    fn capabilities(&self) -> Capabilities {
        self.effective.clone()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn stat(&self, path: &RemotePath) -> Result<Option<Entry>> {
        self.inner.stat(path).await
    }
    async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>> {
        self.inner.list(dir).await
    }
    async fn read(&self, path: &RemotePath) -> Result<crate::Download> {
        self.inner.read(path).await
    }
    async fn write(&self, path: &RemotePath, body: Body, pre: Precondition) -> Result<Entry> {
        match pre {
            Precondition::IfMatch(_) if !self.effective.if_match => {
                Err(self.refuse("IfMatch", path))
            }
            Precondition::IfAbsent if !self.effective.if_absent => {
                Err(self.refuse("IfAbsent", path))
            }
            Precondition::UnderLock(_) if !self.effective.server_lock => {
                Err(self.refuse("a server-enforced lock", path))
            }
            _ => self.inner.write(path, body, pre).await,
        }
    }
    async fn delete(&self, path: &RemotePath, pre: Precondition) -> Result<()> {
        match pre {
            Precondition::None => self.inner.delete(path, pre).await,
            Precondition::UnderLock(_) if self.effective.server_lock => {
                self.inner.delete(path, pre).await
            }
            _ if !self.effective.conditional_delete => {
                Err(self.refuse("a conditional delete", path))
            }
            _ => self.inner.delete(path, pre).await,
        }
    }
    async fn create_dir(&self, path: &RemotePath) -> Result<()> {
        self.inner.create_dir(path).await
    }
    async fn remove_empty_dir(&self, path: &RemotePath) -> Result<()> {
        self.inner.remove_empty_dir(path).await
    }
    async fn watch(&self, dir: &RemotePath) -> Result<crate::watch::ChangeStream> {
        self.inner.watch(dir).await
    }
    async fn lock_dir(&self, dir: &RemotePath, ttl: std::time::Duration) -> Result<crate::DirLock> {
        if !self.effective.server_lock {
            return Err(self.refuse("a server-enforced lock", dir));
        }
        self.inner.lock_dir(dir, ttl).await
    }
    async fn lock_dir_as(
        &self,
        dir: &RemotePath,
        ttl: std::time::Duration,
        owner: &crate::LockOwner,
    ) -> Result<crate::DirLock> {
        if !self.effective.server_lock {
            return Err(self.refuse("a server-enforced lock", dir));
        }
        self.inner.lock_dir_as(dir, ttl, owner).await
    }
    async fn dir_locks(&self, dir: &RemotePath) -> Result<Vec<crate::LockHolder>> {
        self.inner.dir_locks(dir).await
    }
    async fn refresh_lock(
        &self,
        lock: &crate::DirLock,
        ttl: std::time::Duration,
    ) -> Result<crate::DirLock> {
        self.inner.refresh_lock(lock, ttl).await
    }
    async fn unlock_dir(&self, lock: &crate::DirLock) -> Result<()> {
        self.inner.unlock_dir(lock).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_store::MemStore;

    fn dir() -> RemotePath {
        RemotePath::parse("scratch").unwrap()
    }

    #[tokio::test]
    async fn truthful_store_is_reported_truthful() {
        let s = MemStore::new();
        let r = probe(&s, &dir()).await.unwrap();
        assert!(r.is_truthful(), "{}", r.summary());
        assert_eq!(r.if_match, Verdict::Honoured);
        assert_eq!(r.if_absent, Verdict::Honoured);
        assert_eq!(r.conditional_delete, Verdict::Honoured);
        assert!(r.strong_versions && r.read_after_write);
        assert!(
            r.atomic_writes,
            "the store keeps the old content on a failed write"
        );
        assert_eq!(r.effective, s.capabilities());
        // Cleaned up.
        assert!(s.has_no_files().await);
    }

    #[tokio::test]
    async fn lying_store_is_downgraded() {
        let s = MemStore::lying();
        let r = probe(&s, &dir()).await.unwrap();
        assert!(!r.is_truthful());
        assert_eq!(r.if_match, Verdict::Ignored);
        assert_eq!(r.if_absent, Verdict::Ignored);
        assert_eq!(r.conditional_delete, Verdict::Ignored);
        assert!(!r.effective.if_match && !r.effective.if_absent && !r.effective.conditional_delete);
        assert!(!r.effective.has_truthful_cas());
        assert!(s.has_no_files().await);

        let (wrapped, _) = ProbedStorage::connect(MemStore::lying(), &dir())
            .await
            .unwrap();
        assert!(!wrapped.capabilities().if_match);
        let p = RemotePath::parse("f").unwrap();
        let r = wrapped
            .write(&p, Body::from(Vec::new()), Precondition::IfAbsent)
            .await;
        assert!(matches!(r, Err(Error::Unsupported { .. })));
        wrapped
            .write(&p, Body::from(Vec::new()), Precondition::None)
            .await
            .unwrap();
    }

    /// Honours IfAbsent but ignores IfMatch (like nginx's PUT).
    #[derive(Debug)]
    struct IgnoresIfMatch(MemStore);
    #[async_trait::async_trait]
    impl Storage for IgnoresIfMatch {
        fn capabilities(&self) -> Capabilities {
            self.0.capabilities()
        }
        fn describe(&self) -> String {
            "ignores if-match".into()
        }
        async fn stat(&self, p: &RemotePath) -> Result<Option<Entry>> {
            self.0.stat(p).await
        }
        async fn list(&self, p: &RemotePath) -> Result<Vec<Entry>> {
            self.0.list(p).await
        }
        async fn read(&self, p: &RemotePath) -> Result<crate::Download> {
            self.0.read(p).await
        }
        async fn write(&self, p: &RemotePath, b: Body, pre: Precondition) -> Result<Entry> {
            let pre = if matches!(pre, Precondition::IfMatch(_)) {
                Precondition::None
            } else {
                pre
            };
            self.0.write(p, b, pre).await
        }
        async fn delete(&self, p: &RemotePath, pre: Precondition) -> Result<()> {
            self.0.delete(p, pre).await
        }
        async fn create_dir(&self, p: &RemotePath) -> Result<()> {
            self.0.create_dir(p).await
        }
    }

    /// Takes over a second for every write, as a far server might: its versions are
    /// strong, but no run of the probe's writes can prove it.
    #[derive(Debug)]
    struct Slow(MemStore, bool);
    #[async_trait::async_trait]
    impl Storage for Slow {
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                spaced_writes: self.1,
                ..self.0.capabilities()
            }
        }
        fn describe(&self) -> String {
            "slow".into()
        }
        async fn stat(&self, p: &RemotePath) -> Result<Option<Entry>> {
            self.0.stat(p).await
        }
        async fn list(&self, p: &RemotePath) -> Result<Vec<Entry>> {
            self.0.list(p).await
        }
        async fn read(&self, p: &RemotePath) -> Result<crate::Download> {
            self.0.read(p).await
        }
        async fn write(&self, p: &RemotePath, b: Body, pre: Precondition) -> Result<Entry> {
            tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
            self.0.write(p, b, pre).await
        }
        async fn delete(&self, p: &RemotePath, pre: Precondition) -> Result<()> {
            self.0.delete(p, pre).await
        }
        async fn create_dir(&self, p: &RemotePath) -> Result<()> {
            self.0.create_dir(p).await
        }
    }

    #[tokio::test]
    async fn versions_too_slow_to_prove_strong_are_not_trusted() {
        let s = Slow(MemStore::new(), false);
        let text = |n: u8| Bytes::from(format!("probe #{n}"));
        let b = same_size_burst(&s, &RemotePath::parse("p").unwrap(), &text)
            .await
            .unwrap();
        assert!(!b.strong);
        assert_eq!(
            b.versions.len(),
            3,
            "gives up once a write takes over a second"
        );
        // The same store without the delay proves them strong at the third write.
        let b = same_size_burst(&s.0, &RemotePath::parse("q").unwrap(), &text)
            .await
            .unwrap();
        assert!(b.strong);
        assert_eq!(b.versions.len(), 3);
        assert_eq!(b.last, 12);
        // A provider that spaces its writes a second apart: the spacing is seen.
        let spaced = Slow(MemStore::new(), true);
        let b = same_size_burst(&spaced, &RemotePath::parse("r").unwrap(), &text)
            .await
            .unwrap();
        assert!(b.strong);
        assert_eq!(b.versions.len(), 3);
        // Writes half a second apart: neither three inside one second nor a second
        // apart, whatever the provider claims.
        let t = std::time::Instant::now();
        let at = |ms: u64| t + std::time::Duration::from_millis(ms);
        let half = [(at(0), at(10)), (at(500), at(510)), (at(1000), at(1010))];
        assert!(!proven_strong(&half, true));
        let apart = [(at(0), at(10)), (at(1000), at(1010)), (at(2000), at(2010))];
        assert!(proven_strong(&apart, true) && !proven_strong(&apart, false));
    }

    #[tokio::test]
    async fn ignoring_only_if_match_downgrades_only_if_match() {
        let s = IgnoresIfMatch(MemStore::new());
        let r = probe(&s, &dir()).await.unwrap();
        assert_eq!(r.if_match, Verdict::Ignored);
        assert!(!r.effective.if_match);
        assert_eq!(r.if_absent, Verdict::Honoured);
        assert!(r.effective.if_absent);
        assert!(!r.is_truthful());
        assert!(s.0.has_no_files().await);
    }

    #[tokio::test]
    async fn the_cut_body_sends_part_then_fails() {
        let body = cut_body();
        assert_eq!(body.len(), CUT_LEN);
        let mut r = body.open().await.unwrap();
        let mut got = Vec::new();
        let e = tokio::io::AsyncReadExt::read_to_end(&mut r, &mut got)
            .await
            .unwrap_err();
        assert_eq!(got.len() as u64, CUT_SENT);
        assert!(e.to_string().contains("cut on purpose"), "{e}");
        // A second open starts again from the first byte.
        let mut again = Vec::new();
        let mut r = body.open().await.unwrap();
        assert!(tokio::io::AsyncReadExt::read_to_end(&mut r, &mut again)
            .await
            .is_err());
        assert_eq!(again.len() as u64, CUT_SENT);
    }
}
