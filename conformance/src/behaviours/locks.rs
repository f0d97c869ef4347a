//! The server-enforced folder lock (`Storage::lock_dir`).

use super::*;

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
