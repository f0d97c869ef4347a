//! The compare-and-swap race: clients incrementing one counter, by compare-and-swap, a lease or the server lock; nothing may be lost.

use super::*;

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
