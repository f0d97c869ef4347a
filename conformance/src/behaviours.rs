//! The behaviours, one public async function each. Every function works in the scratch
//! folder it is given (which it may assume is empty or missing) and returns a
//! [`Check`]: `Ok(Outcome::Passed)`, `Ok(Outcome::Skipped(why))` when the capabilities
//! say it does not apply, or `Err(Failure)` saying what broke the contract.

use crate::{Check, ClientFactory, Failure, Outcome};
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use syncfabric_core::lock::{LeaseLock, LeaseOptions};
use syncfabric_core::server_lock::ServerLockGuard;
use syncfabric_core::{Body, EntryKind, Error, Precondition, RemotePath, Storage, Version};

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(Failure::new(format!($($fmt)+)));
        }
    };
}

fn p(dir: &RemotePath, name: &str) -> Result<RemotePath, Failure> {
    dir.join(name)
        .map_err(|e| Failure::new(format!("bad test path {name:?}: {e}")))
}

/// Reads a whole file and the version the read reported.
pub async fn read_all(
    s: &dyn Storage,
    path: &RemotePath,
) -> Result<(Vec<u8>, Option<Version>), Error> {
    let mut dl = s.read(path).await?;
    let mut out = Vec::new();
    while let Some(chunk) = dl.stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok((out, dl.version))
}

async fn content(s: &dyn Storage, path: &RemotePath) -> Result<Vec<u8>, Failure> {
    read_all(s, path)
        .await
        .map(|(b, _)| b)
        .map_err(|e| Failure::new(format!("reading {path}: {e}")))
}

async fn put(
    s: &dyn Storage,
    path: &RemotePath,
    data: &[u8],
    pre: Precondition,
) -> Result<Version, Failure> {
    let e = s
        .write(path, Body::from(data.to_vec()), pre.clone())
        .await
        .map_err(|e| Failure::new(format!("write {path} ({pre:?}): {e}")))?;
    ensure!(
        e.path == *path,
        "write {path} returned an entry for {}",
        e.path
    );
    ensure!(
        e.kind == EntryKind::File,
        "write {path} returned a {:?} entry",
        e.kind
    );
    ensure!(
        e.size == data.len() as u64,
        "write {path} returned size {} for {} bytes",
        e.size,
        data.len()
    );
    e.version
        .ok_or_else(|| Failure::new(format!("write {path} returned no version")))
}

fn names(entries: &[syncfabric_core::Entry]) -> BTreeSet<String> {
    entries
        .iter()
        .filter_map(|e| e.path.file_name().map(str::to_string))
        .collect()
}

fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// Pseudo-random bytes from a seed (reproducible failures).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut v = vec![0u8; len];
    rng.fill(&mut v);
    v
}

/// A local temporary file that is removed on drop.
struct TempFile(std::path::PathBuf);
impl TempFile {
    fn new(data: &[u8]) -> Result<TempFile, Failure> {
        let path =
            std::env::temp_dir().join(format!("syncfabric-conformance-{:016x}", fastrand::u64(..)));
        std::fs::write(&path, data)
            .map_err(|e| Failure::new(format!("temp file {}: {e}", path.display())))?;
        Ok(TempFile(path))
    }
}
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Files of 0 bytes to several MiB (capped by `max_single_write` unless the provider
/// chunks) are written — small ones as `Body::Bytes`, large ones as `Body::File` — and
/// read back byte for byte; the write's entry, `stat` and the read agree on size and
/// version.
pub async fn round_trips(s: &dyn Storage, dir: &RemotePath) -> Check {
    let caps = s.capabilities();
    let cap = match (caps.max_single_write, caps.chunked_upload) {
        (Some(m), false) => m,
        _ => u64::MAX,
    };
    let sizes = [
        0usize,
        1,
        100,
        65_535,
        65_536,
        65_537,
        (1 << 20) + 7,
        (4 << 20) + 3,
    ];
    for (i, &len) in sizes.iter().filter(|&&l| l as u64 <= cap).enumerate() {
        let path = p(dir, &format!("size-{len}.bin"))?;
        let data = pattern(len, i as u64 + 1);
        let (body, _tmp) = if len > 65_537 {
            let t = TempFile::new(&data)?;
            let b = Body::from_file(t.0.clone()).await?;
            (b, Some(t))
        } else {
            (Body::from(data.clone()), None)
        };
        let e = s.write(&path, body, Precondition::None).await?;
        ensure!(
            e.size == len as u64,
            "write of {len} bytes returned size {}",
            e.size
        );
        let v = e.version.clone();
        ensure!(v.is_some(), "write of {len} bytes returned no version");
        let st = s.stat(&path).await?;
        let st =
            st.ok_or_else(|| Failure::new(format!("stat {path} after writing it: nothing there")))?;
        ensure!(
            st.kind == EntryKind::File && st.size == len as u64,
            "stat {path}: {st:?}, expected a file of {len} bytes"
        );
        ensure!(
            st.version == v,
            "stat {path} version {:?} differs from the write's {:?}",
            st.version,
            v
        );
        let mut dl = s.read(&path).await?;
        if let Some(sz) = dl.size {
            ensure!(
                sz == len as u64,
                "read {path} announced {sz} bytes, expected {len}"
            );
        }
        if let Some(rv) = &dl.version {
            ensure!(
                Some(rv) == v.as_ref(),
                "read {path} reported version {rv:?}, the write returned {v:?}"
            );
        }
        let mut back = Vec::with_capacity(len);
        while let Some(chunk) = dl.stream.next().await {
            back.extend_from_slice(&chunk?);
        }
        ensure!(
            back == data,
            "{len}-byte round trip differs: read {} bytes, first difference at byte {}",
            back.len(),
            first_difference(&back, &data)
        );
    }
    Ok(Outcome::Passed)
}

/// An overwrite with shorter content is what the next read and `stat` see.
pub async fn overwrite_is_visible(s: &dyn Storage, dir: &RemotePath) -> Check {
    let f = p(dir, "overwrite.txt")?;
    put(s, &f, b"the old and longer content", Precondition::None).await?;
    let v = put(s, &f, b"new", Precondition::None).await?;
    let back = content(s, &f).await?;
    ensure!(
        back == b"new",
        "after an overwrite the read returned {:?}",
        String::from_utf8_lossy(&back)
    );
    let st = s
        .stat(&f)
        .await?
        .ok_or_else(|| Failure::new("stat after overwrite: nothing there"))?;
    ensure!(
        st.size == 3,
        "stat after overwrite reports {} bytes, expected 3",
        st.size
    );
    ensure!(
        st.version == Some(v),
        "stat after overwrite reports a different version than the write"
    );
    Ok(Outcome::Passed)
}

/// Every write of new content gives a new version, also two same-size writes in the
/// same second; `stat` reports the version the write returned.
pub async fn versions_change_on_every_write(s: &dyn Storage, dir: &RemotePath) -> Check {
    let f = p(dir, "versions.txt")?;
    let mut seen = Vec::new();
    for content in [b"aaaa", b"bbbb", b"cccc", b"dddd"] {
        let v = put(s, &f, content, Precondition::None).await?;
        ensure!(
            !seen.contains(&v),
            "two same-size writes in a row got the same version {v:?}"
        );
        let st = s.stat(&f).await?.and_then(|e| e.version);
        ensure!(
            st.as_ref() == Some(&v),
            "stat reports version {st:?}, the write returned {v:?}"
        );
        seen.push(v);
    }
    Ok(Outcome::Passed)
}

/// What a precondition the provider does not claim must do: be refused with
/// `Unsupported`, or be honoured. Returns `Ok(true)` if refused as unsupported.
fn unsupported_or<T>(r: &Result<T, Error>, claimed: bool, what: &str) -> Result<bool, Failure> {
    match r {
        Err(Error::Unsupported { .. }) if !claimed => Ok(true),
        Err(Error::Unsupported { message }) => Err(Failure::new(format!(
            "{what}: claimed by the capabilities but refused as unsupported: {message}"
        ))),
        _ => Ok(false),
    }
}

/// `IfAbsent` twice on one path: the first creates the file, the second fails with
/// `AlreadyExists` and leaves the first content. (Not claimed: `Unsupported` is fine.)
pub async fn if_absent_twice(s: &dyn Storage, dir: &RemotePath) -> Check {
    let claimed = s.capabilities().if_absent;
    let f = p(dir, "if-absent.txt")?;
    let first = s
        .write(&f, Body::from(b"first".to_vec()), Precondition::IfAbsent)
        .await;
    if unsupported_or(&first, claimed, "IfAbsent")? {
        return Ok(Outcome::Skipped(
            "IfAbsent is not supported (refused with Unsupported)".into(),
        ));
    }
    first.map_err(|e| Failure::new(format!("IfAbsent on a new file failed: {e}")))?;
    let second = s
        .write(&f, Body::from(b"SECOND".to_vec()), Precondition::IfAbsent)
        .await;
    match second {
        Err(Error::AlreadyExists { .. }) => {}
        Ok(_) => {
            return Err(Failure::new(
                "the second IfAbsent write was accepted: IfAbsent is ignored",
            ))
        }
        Err(e) => {
            return Err(Failure::new(format!(
                "the second IfAbsent write failed with {e}, expected AlreadyExists"
            )))
        }
    }
    let back = content(s, &f).await?;
    ensure!(
        back == b"first",
        "a refused IfAbsent write changed the content to {:?}",
        String::from_utf8_lossy(&back)
    );
    Ok(Outcome::Passed)
}

/// `IfMatch` with a stale version fails with `PreconditionFailed` and leaves the
/// content; `IfMatch` with the current version succeeds. (Not claimed: `Unsupported`.)
pub async fn if_match_stale(s: &dyn Storage, dir: &RemotePath) -> Check {
    let claimed = s.capabilities().if_match;
    let f = p(dir, "if-match.txt")?;
    let v1 = put(s, &f, b"one", Precondition::None).await?;
    let v2 = put(s, &f, b"two", Precondition::None).await?;
    let stale = s
        .write(&f, Body::from(b"lost".to_vec()), Precondition::IfMatch(v1))
        .await;
    if unsupported_or(&stale, claimed, "IfMatch")? {
        return Ok(Outcome::Skipped(
            "IfMatch is not supported (refused with Unsupported)".into(),
        ));
    }
    match stale {
        Err(Error::PreconditionFailed { .. }) => {}
        Ok(_) => {
            return Err(Failure::new(
                "a write with a stale IfMatch was accepted: IfMatch is ignored",
            ))
        }
        Err(e) => {
            return Err(Failure::new(format!(
                "a stale IfMatch write failed with {e}, expected PreconditionFailed"
            )))
        }
    }
    let back = content(s, &f).await?;
    ensure!(
        back == b"two",
        "a refused IfMatch write changed the content to {:?}",
        String::from_utf8_lossy(&back)
    );
    let v3 = s
        .write(
            &f,
            Body::from(b"three".to_vec()),
            Precondition::IfMatch(v2.clone()),
        )
        .await
        .map_err(|e| Failure::new(format!("IfMatch with the current version was refused: {e}")))?;
    ensure!(
        v3.version.as_ref() != Some(&v2),
        "a successful IfMatch write kept the old version"
    );
    ensure!(
        content(s, &f).await? == b"three",
        "IfMatch write with the current version did not land"
    );
    Ok(Outcome::Passed)
}

/// `IfMatch` on a file that does not exist (never did, or was deleted) fails with
/// `PreconditionFailed` and creates nothing.
pub async fn if_match_missing(s: &dyn Storage, dir: &RemotePath) -> Check {
    let claimed = s.capabilities().if_match;
    let f = p(dir, "never.txt")?;
    let donor = p(dir, "donor.txt")?;
    let v = put(s, &donor, b"donor", Precondition::None).await?;
    let r = s
        .write(
            &f,
            Body::from(b"x".to_vec()),
            Precondition::IfMatch(v.clone()),
        )
        .await;
    if unsupported_or(&r, claimed, "IfMatch")? {
        return Ok(Outcome::Skipped(
            "IfMatch is not supported (refused with Unsupported)".into(),
        ));
    }
    match r {
        Err(Error::PreconditionFailed { .. }) => {}
        Ok(_) => {
            return Err(Failure::new(
                "IfMatch on a missing file was accepted (it created the file)",
            ))
        }
        Err(e) => {
            return Err(Failure::new(format!(
                "IfMatch on a missing file failed with {e}, expected PreconditionFailed"
            )))
        }
    }
    ensure!(
        s.stat(&f).await?.is_none(),
        "a refused IfMatch write created the file"
    );
    s.delete(&donor, Precondition::None).await?;
    match s
        .write(&donor, Body::from(b"x".to_vec()), Precondition::IfMatch(v))
        .await
    {
        Err(Error::PreconditionFailed { .. }) => {}
        Ok(_) => return Err(Failure::new("IfMatch on a deleted file was accepted")),
        Err(e) => {
            return Err(Failure::new(format!(
                "IfMatch on a deleted file failed with {e}, expected PreconditionFailed"
            )))
        }
    }
    ensure!(
        s.stat(&donor).await?.is_none(),
        "a refused IfMatch write re-created a deleted file"
    );
    Ok(Outcome::Passed)
}

/// A delete with a stale `IfMatch` fails with `PreconditionFailed` and leaves the file;
/// with the current version it deletes; on a missing file it is `PreconditionFailed`.
/// (Conditional delete not claimed: `Unsupported`.)
pub async fn delete_stale_if_match(s: &dyn Storage, dir: &RemotePath) -> Check {
    let claimed = s.capabilities().conditional_delete;
    let f = p(dir, "delete-me.txt")?;
    let v1 = put(s, &f, b"one", Precondition::None).await?;
    let v2 = put(s, &f, b"two", Precondition::None).await?;
    let r = s.delete(&f, Precondition::IfMatch(v1.clone())).await;
    if unsupported_or(&r, claimed, "conditional delete")? {
        return Ok(Outcome::Skipped(
            "conditional delete is not supported (refused with Unsupported)".into(),
        ));
    }
    match r {
        Err(Error::PreconditionFailed { .. }) => {}
        Ok(()) => return Err(Failure::new("a delete with a stale IfMatch was accepted")),
        Err(e) => {
            return Err(Failure::new(format!(
                "a stale conditional delete failed with {e}, expected PreconditionFailed"
            )))
        }
    }
    ensure!(
        content(s, &f).await? == b"two",
        "a refused conditional delete changed the file"
    );
    s.delete(&f, Precondition::IfMatch(v2.clone()))
        .await
        .map_err(|e| Failure::new(format!("delete with the current version failed: {e}")))?;
    ensure!(
        s.stat(&f).await?.is_none(),
        "a conditional delete reported success but the file is still there"
    );
    match s.delete(&f, Precondition::IfMatch(v2)).await {
        Err(Error::PreconditionFailed { .. }) => {}
        other => {
            return Err(Failure::new(format!(
                "IfMatch delete of a missing file gave {other:?}, expected PreconditionFailed"
            )))
        }
    }
    Ok(Outcome::Passed)
}

/// The honesty probe finds every claim true, finds that a write cut mid-body leaves
/// the previous content whole, and leaves no probe file (nor a provider's temporary
/// upload) behind.
pub async fn honesty_probe(s: &dyn Storage, dir: &RemotePath) -> Check {
    s.create_dir(dir).await?;
    let before = names(&s.list(dir).await?);
    let report = syncfabric_core::probe::probe(s, dir).await?;
    ensure!(
        report.is_truthful(),
        "the honesty probe found false claims: {}",
        report.summary()
    );
    ensure!(
        report.atomic_writes,
        "a write cut mid-body did not leave the previous content whole: {}",
        report.summary()
    );
    let after = names(&s.list(dir).await?);
    ensure!(
        after == before,
        "the probe left files behind: {:?}",
        after.difference(&before).collect::<Vec<_>>()
    );
    Ok(Outcome::Passed)
}

/// The race: `clients` independent clients (from `new_client`) each add 1 to a counter
/// file `increments` times, concurrently. With truthful CAS (per the capabilities)
/// each increment is a read + `IfMatch`/`IfAbsent` write retried on conflict; without,
/// each increment holds the server's folder lock where it has one
/// ([`syncfabric_core::server_lock`]), else the [lease lock](syncfabric_core::lock),
/// as the engine does. The final count must be exactly `clients × increments`:
/// anything less is a lost update.
pub async fn cas_race(
    new_client: &ClientFactory,
    dir: &RemotePath,
    clients: usize,
    increments: usize,
    lease: &LeaseOptions,
) -> Check {
    let counter = p(dir, "counter")?;
    let mut handles = Vec::new();
    let mut via_lock = false;
    // All clients start together, so they really contend.
    let start = Arc::new(tokio::sync::Barrier::new(clients));
    for c in 0..clients {
        let s = new_client().await?;
        via_lock |= !s.capabilities().has_truthful_cas();
        let (counter, dir, lease, start) =
            (counter.clone(), dir.clone(), lease.clone(), start.clone());
        handles.push(tokio::spawn(async move {
            start.wait().await;
            for _ in 0..increments {
                let caps = s.capabilities();
                if caps.has_truthful_cas() {
                    increment_cas(s.as_ref(), &counter).await?;
                } else if caps.server_lock {
                    increment_server_locked(s.clone(), &dir, &counter, &lease).await?;
                } else {
                    increment_locked(s.clone(), &dir, &counter, &lease).await?;
                }
            }
            Ok::<_, Failure>(c)
        }));
    }
    for h in handles {
        h.await
            .map_err(|e| Failure::new(format!("a race client panicked: {e}")))??;
    }
    let reader = new_client().await?;
    let text = content(reader.as_ref(), &counter).await?;
    let total = parse_count(&text)? as usize;
    let how = if via_lock {
        "through a lock"
    } else {
        "with compare-and-swap"
    };
    let want = clients * increments;
    ensure!(
        total >= want,
        "{clients} clients × {increments} increments {how} ended at {total}: {} updates lost",
        want - total
    );
    ensure!(
        total == want,
        "{clients} clients × {increments} increments {how} ended at {total}: an increment counted twice"
    );
    let tags: std::collections::HashSet<_> = String::from_utf8_lossy(&text)
        .split_whitespace()
        .skip(1)
        .map(str::to_owned)
        .collect();
    ensure!(
        tags.len() == want,
        "the counter says {total} but carries {} distinct increments",
        tags.len()
    );
    Ok(Outcome::Passed)
}

/// A short random pause between a read and the write that depends on it, so the other
/// clients interleave as they would over a network.
async fn think() {
    tokio::time::sleep(Duration::from_micros(fastrand::u64(0..=2000))).await;
}

fn parse_count(b: &[u8]) -> Result<u64, Failure> {
    String::from_utf8_lossy(b)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .parse()
        .map_err(|_| Failure::new(format!("counter holds {:?}", String::from_utf8_lossy(b))))
}

/// The counter's next content: the count plus one, then every increment's tag so far
/// and this one's. Every write is unique, as every commit of the engine is (its
/// database holds fresh ids and times): where an attempt's answer was lost, the retry
/// layer counts a file holding exactly our bytes as our write landing
/// ([`syncfabric_core::retry::RetryingStorage`]), which two clients writing the same
/// count from the same base would both pass. And a client whose write failed
/// ambiguously finds out whether it landed by looking for its tag, instead of
/// incrementing twice.
fn next_counter(prev: &[u8], tag: &str) -> Result<Body, Failure> {
    let n = if prev.is_empty() {
        0
    } else {
        parse_count(prev)?
    };
    let text = String::from_utf8_lossy(prev);
    let tags: Vec<&str> = text.split_whitespace().skip(1).collect();
    Ok(Body::from(
        format!("{} {} {tag}\n", n + 1, tags.join(" ")).into_bytes(),
    ))
}

/// Whether the counter's content already carries this increment's tag.
fn holds_tag(content: &[u8], tag: &str) -> bool {
    String::from_utf8_lossy(content)
        .split_whitespace()
        .skip(1)
        .any(|t| t == tag)
}

fn new_tag() -> String {
    format!("{:016x}", fastrand::u64(..))
}

async fn increment_cas(s: &dyn Storage, counter: &RemotePath) -> Result<(), Failure> {
    let tag = new_tag();
    for _ in 0..1000 {
        let (prev, pre) = match read_all(s, counter).await {
            // An earlier attempt whose answer was lost did land.
            Ok((b, _)) if holds_tag(&b, &tag) => return Ok(()),
            Ok((b, Some(v))) => (b, Precondition::IfMatch(v)),
            Ok((b, None)) => {
                // The read did not say its version: take stat's, and make sure the
                // bytes we read are that version's.
                let v = s.stat(counter).await?.and_then(|e| e.version);
                let (b2, _) = read_all(s, counter).await?;
                match v {
                    Some(v) if b2 == b => (b, Precondition::IfMatch(v)),
                    _ => continue,
                }
            }
            Err(Error::NotFound { .. }) => (Vec::new(), Precondition::IfAbsent),
            Err(e) => return Err(e.into()),
        };
        think().await;
        match s.write(counter, next_counter(&prev, &tag)?, pre).await {
            Ok(_) => return Ok(()),
            Err(Error::PreconditionFailed { .. } | Error::AlreadyExists { .. }) => continue,
            Err(e) if e.is_retryable() => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Failure::new(
        "an increment did not get through in 1000 attempts",
    ))
}

async fn increment_locked(
    s: Arc<dyn Storage>,
    dir: &RemotePath,
    counter: &RemotePath,
    lease: &LeaseOptions,
) -> Result<(), Failure> {
    let tag = new_tag();
    for _ in 0..100 {
        let guard = LeaseLock::acquire(s.clone(), dir, lease.clone()).await?;
        let prev = match read_all(s.as_ref(), counter).await {
            Ok((b, _)) => b,
            Err(Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        think().await;
        match guard.check().await {
            Ok(()) => {}
            // The lease was lost before the write (a refresh came too late on a loaded
            // machine and another client took over): nothing was written, so the lock
            // did its job; start this increment again.
            Err(Error::Locked { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
        s.write(counter, next_counter(&prev, &tag)?, Precondition::None)
            .await?;
        match guard.release().await {
            // Written; a lease lost after the write only means someone took over.
            Ok(()) | Err(Error::Locked { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(Failure::new(
        "an increment did not get through the lease lock in 100 attempts",
    ))
}

async fn increment_server_locked(
    s: Arc<dyn Storage>,
    dir: &RemotePath,
    counter: &RemotePath,
    lease: &LeaseOptions,
) -> Result<(), Failure> {
    // A server locks folders that exist.
    s.create_dir(dir).await?;
    let tag = new_tag();
    for _ in 0..100 {
        let guard = ServerLockGuard::acquire(s.clone(), dir, lease).await?;
        let prev = match read_all(s.as_ref(), counter).await {
            Ok((b, _)) => b,
            Err(Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        think().await;
        let written = s
            .write(counter, next_counter(&prev, &tag)?, guard.precondition())
            .await;
        let _ = guard.release().await;
        match written {
            Ok(_) => return Ok(()),
            // The lock expired and passed on before the write: the server refused it.
            Err(Error::PreconditionFailed { .. } | Error::Locked { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Failure::new(
        "an increment did not get through the server lock in 100 attempts",
    ))
}

/// A server-enforced folder lock ([`Storage::lock_dir`]), where claimed: exclusive
/// (a second client's lock is `Locked`); other clients' writes, new files and deletes
/// under it are refused with `Locked` and leave the content as it was, while their
/// reads work; the holder's writes, new files and deletes under it work; a refresh
/// works; after the release (idempotent) the released lock is refused
/// (`PreconditionFailed` or `Locked`) and another client can lock.
pub async fn server_lock(new_client: &ClientFactory, dir: &RemotePath) -> Check {
    let holder = new_client().await?;
    if !holder.capabilities().server_lock {
        return Ok(Outcome::Skipped("no server-enforced lock claimed".into()));
    }
    let other = new_client().await?;
    let locked = p(dir, "locked")?;
    holder.create_dir(&locked).await?;
    let a = p(&locked, "a.txt")?;
    put(holder.as_ref(), &a, b"before the lock", Precondition::None).await?;
    let ttl = Duration::from_secs(60);
    let lock = holder.lock_dir(&locked, ttl).await?;
    let under = Precondition::UnderLock(lock.clone());
    let result = async {
        let refused = |r: Result<(), Error>, what: &str| match r {
            Err(Error::Locked { .. }) => Ok(()),
            Ok(()) => Err(Failure::new(format!(
                "{what} by another client went through the lock"
            ))),
            Err(e) => Err(Failure::new(format!(
                "{what} by another client failed with {e}, expected Locked"
            ))),
        };
        refused(
            other.lock_dir(&locked, ttl).await.map(|_| ()),
            "a second lock",
        )?;
        refused(
            other
                .write(&a, Body::from(b"intruder".to_vec()), Precondition::None)
                .await
                .map(|_| ()),
            "a write",
        )?;
        refused(
            other
                .write(
                    &p(&locked, "b.txt")?,
                    Body::from(b"intruder".to_vec()),
                    Precondition::None,
                )
                .await
                .map(|_| ()),
            "a new file",
        )?;
        refused(other.delete(&a, Precondition::None).await, "a delete")?;
        ensure!(
            content(other.as_ref(), &a).await? == b"before the lock",
            "refused writes changed the content, or a locked file cannot be read"
        );
        put(holder.as_ref(), &a, b"under the lock", under.clone()).await?;
        let c = p(&locked, "c.txt")?;
        put(holder.as_ref(), &c, b"new under the lock", under.clone()).await?;
        holder.delete(&c, under.clone()).await?;
        ensure!(
            holder.stat(&c).await?.is_none(),
            "a delete under the lock left the file"
        );
        holder.refresh_lock(&lock, ttl).await?;
        Ok::<_, Failure>(())
    }
    .await;
    holder.unlock_dir(&lock).await?;
    result?;
    holder.unlock_dir(&lock).await?;
    match holder
        .write(&a, Body::from(b"stale".to_vec()), under.clone())
        .await
    {
        Err(Error::PreconditionFailed { .. } | Error::Locked { .. }) => {}
        Ok(_) => return Err(Failure::new("a write under a released lock went through")),
        Err(e) => {
            return Err(Failure::new(format!(
                "a write under a released lock failed with {e}, expected PreconditionFailed"
            )))
        }
    }
    ensure!(
        content(other.as_ref(), &a).await? == b"under the lock",
        "the holder's write under the lock is not what is stored"
    );
    let second = other.lock_dir(&locked, ttl).await?;
    other.unlock_dir(&second).await?;
    Ok(Outcome::Passed)
}

/// Writes that fail — a `Body::File` whose file is gone, or whose file is shorter than
/// the body declares (it changed mid-way) — return an error, leave the previous
/// version current (same bytes, same version), and leave no stray file in the listing.
pub async fn failed_write_keeps_previous(s: &dyn Storage, dir: &RemotePath) -> Check {
    let f = p(dir, "precious.txt")?;
    let v = put(s, &f, b"previous content", Precondition::None).await?;
    let before = names(&s.list(dir).await?);

    let gone = std::env::temp_dir().join(format!(
        "syncfabric-conformance-gone-{:016x}",
        fastrand::u64(..)
    ));
    let shrunk_data = pattern(100_000, 7);
    let shrunk = TempFile::new(&shrunk_data[..40_000])?;
    let cases = [
        (
            "a body file that does not exist",
            Body::File {
                path: gone,
                len: 100_000,
            },
        ),
        (
            "a body file shorter than declared",
            Body::File {
                path: shrunk.0.clone(),
                len: 100_000,
            },
        ),
    ];
    for (what, body) in cases {
        for pre in [Precondition::None, Precondition::IfMatch(v.clone())] {
            let r = s.write(&f, body.clone(), pre.clone()).await;
            ensure!(r.is_err(), "a write of {what} ({pre:?}) succeeded: {r:?}");
            let back = content(s, &f).await?;
            ensure!(
                back == b"previous content",
                "after a failed write of {what} the file holds {} other bytes",
                back.len()
            );
            let st = s.stat(&f).await?.and_then(|e| e.version);
            ensure!(
                st.as_ref() == Some(&v),
                "after a failed write of {what} the version changed"
            );
            let now = names(&s.list(dir).await?);
            ensure!(
                now == before,
                "a failed write of {what} left stray files: {:?}",
                now.difference(&before).collect::<Vec<_>>()
            );
        }
        let fresh = p(dir, "never-written.bin")?;
        let r = s.write(&fresh, body.clone(), Precondition::None).await;
        ensure!(r.is_err(), "a new-file write of {what} succeeded");
        ensure!(
            s.stat(&fresh).await?.is_none(),
            "a failed new-file write of {what} left the file"
        );
    }
    Ok(Outcome::Passed)
}

/// The awkward names a vault folder or a person can produce, each written, listed,
/// stat'ed and read back under exactly its own name.
pub const AWKWARD_NAMES: &[&str] = &[
    "with space.txt",
    "  leading and trailing spaces  ",
    "100%.txt",
    "%41%42",
    "%2e%2e",
    "hash#tag",
    "question?mark",
    "amp&semi;eq=plus+",
    "quote'dq\"",
    "[brackets]{braces}",
    "caf\u{e9} nfc",
    "\u{65e5}\u{672c}\u{8a9e}",
    "emoji \u{1f510}\u{1f600}",
    ".hidden",
    "..double-dot",
    "...",
    "colon:name",
    "star*pipe|lt<gt>",
];

/// The NFD form of a name with a combining accent, written in its own folder (servers
/// that normalise to NFC may list it as NFC; both are accepted in the listing).
pub const NFD_NAME: &str = "cafe\u{301} nfd";
const NFD_AS_NFC: &str = "caf\u{e9} nfd";

/// Files named with spaces, `%`, `#`, `?`, unicode (NFC and NFD), emoji and leading dots
/// can be written, listed under the same name, stat'ed and read back.
pub async fn awkward_names(s: &dyn Storage, dir: &RemotePath) -> Check {
    for name in AWKWARD_NAMES {
        let f = p(dir, name)?;
        put(s, &f, name.as_bytes(), Precondition::None).await?;
    }
    let listed = names(&s.list(dir).await?);
    let wanted: BTreeSet<String> = AWKWARD_NAMES.iter().map(|n| n.to_string()).collect();
    ensure!(
        listed == wanted,
        "listing differs: missing {:?}, unexpected {:?}",
        wanted.difference(&listed).collect::<Vec<_>>(),
        listed.difference(&wanted).collect::<Vec<_>>()
    );
    for name in AWKWARD_NAMES {
        let f = p(dir, name)?;
        let st = s
            .stat(&f)
            .await?
            .ok_or_else(|| Failure::new(format!("stat {name:?}: nothing there")))?;
        ensure!(
            st.size == name.len() as u64 && st.path == f,
            "stat {name:?} gave {st:?}"
        );
        ensure!(
            content(s, &f).await? == name.as_bytes(),
            "reading {name:?} returned other bytes"
        );
    }
    let nfd_dir = p(dir, "nfd")?;
    let f = p(&nfd_dir, NFD_NAME)?;
    put(s, &f, b"nfd", Precondition::None).await?;
    ensure!(
        content(s, &f).await? == b"nfd",
        "reading the NFD name returned other bytes"
    );
    let listed = names(&s.list(&nfd_dir).await?);
    ensure!(
        listed.len() == 1 && (listed.contains(NFD_NAME) || listed.contains(NFD_AS_NFC)),
        "the NFD name is listed as {listed:?}"
    );
    for name in AWKWARD_NAMES {
        s.delete(&p(dir, name)?, Precondition::None).await?;
    }
    Ok(Outcome::Passed)
}

/// `list` of an empty folder is empty, of a missing one is `NotFound`, and of nested
/// folders gives direct children only, with full paths, kinds, sizes, and versions on
/// files only. `stat` of a folder is a `Dir` entry without version; of nothing, `None`.
pub async fn list_folders(s: &dyn Storage, dir: &RemotePath) -> Check {
    let empty = p(dir, "empty")?;
    s.create_dir(&empty).await?;
    s.create_dir(&empty)
        .await
        .map_err(|e| Failure::new(format!("create_dir of an existing folder failed: {e}")))?;
    let l = s.list(&empty).await?;
    ensure!(l.is_empty(), "an empty folder lists {:?}", names(&l));
    match s.list(&p(dir, "missing")?).await {
        Err(Error::NotFound { .. }) => {}
        other => {
            return Err(Failure::new(format!(
                "listing a missing folder gave {other:?}, expected NotFound"
            )))
        }
    }
    let a = p(dir, "a")?;
    let b = p(&a, "b")?;
    let c = p(&b, "c.txt")?;
    let top = p(&a, "top.txt")?;
    put(s, &c, b"deep", Precondition::None).await?;
    put(s, &top, b"top!!", Precondition::None).await?;
    let la = s.list(&a).await?;
    ensure!(
        la.len() == 2,
        "list {a} gave {} entries: {:?}",
        la.len(),
        names(&la)
    );
    for e in &la {
        if e.path == b {
            ensure!(
                e.kind == EntryKind::Dir && e.version.is_none(),
                "folder entry {e:?}"
            );
        } else if e.path == top {
            ensure!(
                e.kind == EntryKind::File && e.size == 5 && e.version.is_some(),
                "file entry {e:?}"
            );
        } else {
            return Err(Failure::new(format!(
                "list {a} gave an unexpected entry {e:?} (paths must be full)"
            )));
        }
    }
    let lb = s.list(&b).await?;
    ensure!(
        lb.len() == 1 && lb[0].path == c && lb[0].size == 4,
        "list {b} gave {lb:?}"
    );
    let ld = names(&s.list(dir).await?);
    ensure!(
        ld == ["a", "empty"].iter().map(|s| s.to_string()).collect(),
        "list {dir} gave {ld:?}"
    );
    match s.stat(&b).await? {
        Some(e) if e.kind == EntryKind::Dir && e.version.is_none() => {}
        other => return Err(Failure::new(format!("stat of a folder gave {other:?}"))),
    }
    ensure!(
        s.stat(&p(dir, "nothing")?).await?.is_none(),
        "stat of nothing is not None"
    );
    Ok(Outcome::Passed)
}

/// Deleting a missing file, or the same file twice, succeeds; afterwards it is gone
/// from `stat` and `list`.
pub async fn delete_is_idempotent(s: &dyn Storage, dir: &RemotePath) -> Check {
    let f = p(dir, "twice.txt")?;
    let keep = p(dir, "keep.txt")?;
    s.delete(&p(dir, "never-existed.txt")?, Precondition::None)
        .await
        .map_err(|e| Failure::new(format!("deleting a missing file failed: {e}")))?;
    put(s, &f, b"x", Precondition::None).await?;
    put(s, &keep, b"y", Precondition::None).await?;
    s.delete(&f, Precondition::None).await?;
    s.delete(&f, Precondition::None)
        .await
        .map_err(|e| Failure::new(format!("the second delete failed: {e}")))?;
    ensure!(s.stat(&f).await?.is_none(), "a deleted file is still there");
    let l = names(&s.list(dir).await?);
    ensure!(
        l == ["keep.txt".to_string()].into_iter().collect(),
        "after delete the folder lists {l:?}"
    );
    match s.read(&f).await {
        Err(Error::NotFound { .. }) => {}
        other => {
            return Err(Failure::new(format!(
                "reading a deleted file gave {:?}, expected NotFound",
                other.map(|_| ())
            )))
        }
    }
    Ok(Outcome::Passed)
}

/// Where `read_after_write` is claimed, each read right after a write returns what was
/// written and each `stat` its version.
pub async fn read_after_write(s: &dyn Storage, dir: &RemotePath) -> Check {
    if !s.capabilities().read_after_write {
        return Ok(Outcome::Skipped(
            "read-after-write consistency is not claimed".into(),
        ));
    }
    let f = p(dir, "raw.txt")?;
    for i in 0..10u32 {
        let data = format!("generation {i}");
        let v = put(s, &f, data.as_bytes(), Precondition::None).await?;
        let (back, rv) = read_all(s, &f).await?;
        ensure!(
            back == data.as_bytes(),
            "read right after write {i} returned {:?}",
            String::from_utf8_lossy(&back)
        );
        if let Some(rv) = rv {
            ensure!(
                rv == v,
                "read right after write {i} reported an older version"
            );
        }
        let st = s.stat(&f).await?.and_then(|e| e.version);
        ensure!(
            st == Some(v),
            "stat right after write {i} reported another version"
        );
    }
    Ok(Outcome::Passed)
}

/// Paths that try to leave the root are refused before they reach the provider, and
/// names that only *look* like escapes once decoded (`%2e%2e`, `..%2f…`) are stored
/// literally inside the scratch folder.
pub async fn escape_attempts_refused(s: &dyn Storage, dir: &RemotePath) -> Check {
    for bad in [
        "..",
        "../x",
        "a/../../x",
        "/../etc/passwd",
        "a\\..\\x",
        "x\u{0}y",
        "a/\u{7f}",
    ] {
        ensure!(
            RemotePath::parse(bad).is_err(),
            "RemotePath::parse accepted {bad:?}"
        );
        ensure!(dir.join(bad).is_err(), "RemotePath::join accepted {bad:?}");
    }
    let parent = dir.parent().unwrap_or_default();
    let outside_before = names(&s.list(&parent).await.unwrap_or_default());
    let literal = [
        "%2e%2e",
        "..%2fescaped",
        "%2e%2e%2fescaped",
        "%2F",
        "..%5cescaped",
    ];
    for name in literal {
        put(s, &p(dir, name)?, name.as_bytes(), Precondition::None).await?;
    }
    let inside = names(&s.list(dir).await?);
    let wanted: BTreeSet<String> = literal.iter().map(|n| n.to_string()).collect();
    ensure!(
        inside == wanted,
        "names were not stored literally: listed {inside:?}"
    );
    let mut outside_now = names(&s.list(&parent).await.unwrap_or_default());
    if let Some(me) = dir.file_name() {
        outside_now.remove(me);
    }
    let mut outside_before = outside_before;
    if let Some(me) = dir.file_name() {
        outside_before.remove(me);
    }
    ensure!(
        outside_now == outside_before,
        "writing inside the scratch folder changed its parent: {outside_now:?}"
    );
    Ok(Outcome::Passed)
}

/// A write into folders that do not exist yet creates them (parents included), and a
/// `Body::File` write stores the file's bytes.
pub async fn parents_are_created(s: &dyn Storage, dir: &RemotePath) -> Check {
    let deep = p(dir, "x/y/z/file.bin")?;
    put(s, &deep, b"deep", Precondition::None).await?;
    for d in ["x", "x/y", "x/y/z"] {
        match s.stat(&p(dir, d)?).await? {
            Some(e) if e.kind == EntryKind::Dir => {}
            other => {
                return Err(Failure::new(format!(
                    "parent {d} after a deep write: {other:?}"
                )))
            }
        }
    }
    let data = Bytes::from(pattern(5000, 99));
    let t = TempFile::new(&data)?;
    let from_file = p(dir, "from-file.bin")?;
    s.write(
        &from_file,
        Body::from_file(t.0.clone()).await?,
        Precondition::None,
    )
    .await
    .map_err(|e| Failure::new(format!("a write from a local file failed: {e}")))?;
    ensure!(
        content(s, &from_file).await? == data,
        "a Body::File write stored other bytes"
    );
    Ok(Outcome::Passed)
}
