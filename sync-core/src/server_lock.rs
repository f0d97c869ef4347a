//! Holding a server-enforced folder lock ([`Storage::lock_dir`]) for one commit.
//!
//! Where a storage's conditional writes are not truthful but its server enforces a
//! folder lock (WebDAV class 2 `LOCK`, confirmed by the [honesty probe](crate::probe)),
//! the engine commits under that lock instead of the [lease lock](crate::lock). Unlike a
//! lease, it fences: every write under the folder carries the lock
//! ([`Precondition::UnderLock`]) and the server refuses it once the lock expired or
//! passed to another client, so a write that was delayed or retried past the lock's
//! life fails instead of overwriting someone else's commit. No settle pause, no lock
//! file, no clock file: one request to take it, one to release it.
//!
//! [`ServerLockGuard::acquire`] waits for another holder (polling with jitter, up to
//! [`LeaseOptions::acquire_timeout`]), then refreshes the lock in the background every
//! third of its granted length. [`ServerLockGuard::release`] stops refreshing and
//! unlocks; a dropped guard stops refreshing and the server lets the lock expire.
//! [`ServerLockGuard::acquire_as`] takes it as a [`LockOwner`]: the
//! same device's crashed lock is released at once (see [`crate::lock_owner`]), and
//! the warning and error for another holder name it and its expiry.
//!
//! ```no_run
//! # async fn demo(storage: std::sync::Arc<dyn syncfabric_core::Storage>) -> syncfabric_core::Result<()> {
//! use syncfabric_core::{lock::LeaseOptions, server_lock::ServerLockGuard, Body, RemotePath};
//! let dir = RemotePath::parse("0b7c4a1e-vault")?;
//! let guard = ServerLockGuard::acquire(storage.clone(), &dir, &LeaseOptions::default()).await?;
//! // ... check nothing changed since the merge, then:
//! storage
//!     .write(&dir.join("vault.enpassdb")?, Body::from(vec![1, 2, 3]), guard.precondition())
//!     .await?;
//! guard.release().await?;
//! # Ok(()) }
//! ```

use crate::lock::LeaseOptions;
use crate::{DirLock, Error, LockOwner, Precondition, RemotePath, Result, Storage};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A held server lock; see the [module docs](self).
#[derive(Debug)]
pub struct ServerLockGuard {
    storage: Arc<dyn Storage>,
    lock: DirLock,
    refresher: Option<tokio::task::JoinHandle<()>>,
}

impl ServerLockGuard {
    /// Takes the server lock on `dir`, for `opts.ttl`, waiting while another client
    /// holds it (every `opts.poll_interval` plus jitter). [`Error::Locked`] after
    /// `opts.acquire_timeout`; other errors as [`Storage::lock_dir`] returns them.
    pub async fn acquire(
        storage: Arc<dyn Storage>,
        dir: &RemotePath,
        opts: &LeaseOptions,
    ) -> Result<ServerLockGuard> {
        Self::acquire_as(storage, dir, opts, None).await
    }

    /// [`ServerLockGuard::acquire`] as `owner` ([`Storage::lock_dir_as`]): a lock of
    /// `owner`'s own device left by a crashed run is released at once. While another
    /// client holds the lock, the first refusal is warned at once, naming the holder and
    /// how long the server may keep its lock where the server tells; the wait stays
    /// bounded by `opts.acquire_timeout`, and the final [`Error::Locked`] names the
    /// holder too. A lock of the exclusive `owner`'s own device that nobody can release
    /// (its token unknown) and that the server keeps beyond the wait fails at once.
    pub async fn acquire_as(
        storage: Arc<dyn Storage>,
        dir: &RemotePath,
        opts: &LeaseOptions,
        owner: Option<&LockOwner>,
    ) -> Result<ServerLockGuard> {
        let deadline = Instant::now() + opts.acquire_timeout;
        let mut told = false;
        let lock = loop {
            let taken = match owner {
                Some(o) => storage.lock_dir_as(dir, opts.ttl, o).await,
                None => storage.lock_dir(dir, opts.ttl).await,
            };
            match taken {
                Ok(l) => break l,
                Err(e @ Error::Locked { .. }) => {
                    if Instant::now() >= deadline {
                        return Err(e);
                    }
                    if !told {
                        if let Some(e) = own_lock_outlasting(&storage, dir, owner, deadline).await {
                            return Err(e);
                        }
                    }
                    let base = opts.poll_interval.max(Duration::from_millis(10));
                    let jitter = base.mul_f64(fastrand::f64());
                    if !told {
                        told = true;
                        let left = deadline.saturating_duration_since(Instant::now());
                        tracing::warn!(
                            "{e} (a sync on another device); waiting up to {} s for it",
                            left.as_secs()
                        );
                    }
                    tokio::time::sleep((base + jitter).min(
                        deadline.saturating_duration_since(Instant::now())
                            + Duration::from_millis(1),
                    ))
                    .await;
                }
                Err(e) => return Err(e),
            }
        };
        tracing::debug!(%dir, ttl = ?lock.ttl(), "server lock taken");
        let refresher = {
            let storage = storage.clone();
            let lock = lock.clone();
            let ttl = opts.ttl;
            let every = (lock.ttl().min(ttl) / 3).max(Duration::from_millis(100));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    match storage.refresh_lock(&lock, ttl).await {
                        Ok(_) => {}
                        Err(Error::PreconditionFailed { .. }) => {
                            // Gone: every further write under it will be refused by the
                            // server, which is the point. Nothing left to refresh.
                            tracing::warn!(dir = %lock.dir(), "server lock lost before the commit ended");
                            return;
                        }
                        Err(e) => {
                            tracing::debug!(dir = %lock.dir(), error = %e, "server lock refresh failed; trying again")
                        }
                    }
                }
            })
        };
        Ok(ServerLockGuard {
            storage,
            lock,
            refresher: Some(refresher),
        })
    }

    /// The lock.
    pub fn lock(&self) -> &DirLock {
        &self.lock
    }

    /// The precondition for writes and deletes under the lock.
    pub fn precondition(&self) -> Precondition {
        Precondition::UnderLock(self.lock.clone())
    }

    /// Stops refreshing and releases the lock (idempotent at the server).
    pub async fn release(mut self) -> Result<()> {
        if let Some(t) = self.refresher.take() {
            t.abort();
        }
        self.storage.unlock_dir(&self.lock).await
    }
}

/// A lock of `owner`'s own device that the wait cannot outlast, as the error to fail
/// with at once. With an exclusive owner no other live process takes locks as this
/// device, and the provider has already released every lock of the device it could
/// (by a token the server shows, or the engine by the token it recorded). What is
/// left is a lock whose `LOCK` answer was lost on the way back, on a server that shows
/// no tokens (SabreDAV): nobody can release it, so it lasts until the server drops it,
/// and waiting less than that only delays the same refusal.
async fn own_lock_outlasting(
    storage: &Arc<dyn Storage>,
    dir: &RemotePath,
    owner: Option<&LockOwner>,
    deadline: Instant,
) -> Option<Error> {
    let owner = owner.filter(|o| o.is_exclusive())?;
    let held = storage.dir_locks(dir).await.ok()?;
    let wait_ends =
        std::time::SystemTime::now() + deadline.saturating_duration_since(Instant::now());
    let own = held
        .iter()
        .filter(|h| h.is_device_of(owner) && h.token.is_none())
        .find(|h| h.expires_at().is_none_or(|at| at > wait_ends))?;
    Some(Error::Locked {
        path: dir.to_string(),
        holder: Some(format!(
            "this device itself (an earlier LOCK whose answer was lost; the server shows no token to release it with): {own}. Changes stay on this device; the first sync after that sends them"
        )),
    })
}

impl Drop for ServerLockGuard {
    fn drop(&mut self) {
        if let Some(t) = self.refresher.take() {
            t.abort();
        }
    }
}
