//! Step 4 of a sync, the commit, and the lock that protects it.
//!
//! How a commit is protected is chosen once per attempt from what the remote's verdict
//! proved ([`CommitLock::choose`]): compare-and-swap on the database's version where
//! the storage's conditional writes are truthful; the server's own folder lock where it
//! enforces one (taken only now, for the commit, and carried by every write); the lease
//! lock otherwise (taken before the slow path, checked right before the database is
//! written, and bounding every write of the commit). Every precondition of the commit
//! comes from here.

use super::plan::Plan;
use super::sync::{lost_lock_is_a_race, Run};
use super::transfer::{attachment_file_name, meter, upload};
use super::{SyncError, SyncReport, SyncState};
use std::collections::BTreeSet;
use syncfabric_core::lock::{LeaseGuard, LeaseLock};
use syncfabric_core::progress::Direction;
use syncfabric_core::server_lock::ServerLockGuard;
use syncfabric_core::{Body, Error as StorageError, Precondition, Result, Version};
use syncfabric_vault::Vault;

/// How commits to a remote are protected (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Protection {
    /// `IfMatch` / `IfAbsent` on the database.
    CompareAndSwap,
    /// The server's folder lock, for the commit.
    ServerLock,
    /// The lease lock, for the whole slow path.
    Lease,
}

/// The protection of one sync attempt, and the locks it holds.
pub(super) struct CommitLock {
    protection: Protection,
    lease: Option<LeaseGuard>,
    server: Option<ServerLockGuard>,
}

impl CommitLock {
    /// Chooses the protection from the storage's (probed) capabilities; under a lease,
    /// takes it now (not for a dry run, which commits nothing).
    pub(super) async fn choose(run: &Run<'_>) -> Result<CommitLock> {
        let caps = run.storage.capabilities();
        let protection = if caps.has_truthful_cas() {
            Protection::CompareAndSwap
        } else if caps.server_lock {
            Protection::ServerLock
        } else {
            Protection::Lease
        };
        let lease = match protection {
            Protection::Lease if !run.opts.dry_run => {
                let (storage, dir) = (run.storage.clone(), &run.layout.dir);
                Some(LeaseLock::acquire(storage, dir, run.opts.lease.clone()).await?)
            }
            _ => None,
        };
        Ok(CommitLock {
            protection,
            lease,
            server: None,
        })
    }

    /// Whether the lease is held: the remote must be looked at again under it.
    pub(super) fn holds_lease(&self) -> bool {
        self.lease.is_some()
    }

    /// Under the server lock: takes it and checks, once, that nobody committed since
    /// `seen` (under the lock nobody else can). Otherwise nothing.
    async fn begin(&mut self, run: &Run<'_>, seen: &Option<Version>) -> Result<(), SyncError> {
        if self.protection != Protection::ServerLock {
            return Ok(());
        }
        let (storage, dir) = (run.storage.clone(), &run.layout.dir);
        let owner = Some(run.owner);
        let g = syncfabric_core::server_lock::ServerLockGuard::acquire_as(
            storage,
            dir,
            &run.opts.lease,
            owner,
        )
        .await?;
        let recorded = run.state.record_server_lock(g.lock());
        self.server = Some(g);
        recorded?;
        run.check_unchanged(seen).await
    }

    /// The precondition of the commit's other writes and deletes (vault.json, the
    /// commit marker, garbage): the server lock's, else none.
    fn plain(&self) -> Precondition {
        match &self.server {
            Some(g) => g.precondition(),
            None => Precondition::None,
        }
    }

    /// The precondition of a new attachment file. Named by its uuid and never changed,
    /// so where `IfAbsent` is not promised a plain write is as safe: the only file it
    /// could replace holds the same bytes.
    fn for_attachment(&self, run: &Run<'_>) -> Precondition {
        match &self.server {
            Some(g) => g.precondition(),
            None if run.storage.capabilities().if_absent => Precondition::IfAbsent,
            None => Precondition::None,
        }
    }

    /// The precondition of the database write. Under a lease: the lease is checked
    /// and the remote looked at once more right before (a lease lost to another device,
    /// or a commit made meanwhile, is a lost race).
    async fn for_database(
        &self,
        run: &Run<'_>,
        seen: &Option<Version>,
    ) -> Result<Precondition, SyncError> {
        match (self.protection, &self.lease) {
            (Protection::ServerLock, _) => Ok(self.plain()),
            (Protection::Lease, Some(g)) => {
                let db = &run.layout.db;
                g.check().await.map_err(|e| lost_lock_is_a_race(e, db))?;
                run.check_unchanged(seen).await?;
                Ok(Precondition::None)
            }
            (_, _) => Ok(match seen {
                Some(v) => Precondition::IfMatch(v.clone()),
                None => Precondition::IfAbsent,
            }),
        }
    }

    /// Runs one write of the commit: under a lease only while the lease is certainly
    /// ours (a write still retrying when it could have passed to another device is
    /// abandoned); a lock lost to another client counts as a lost race.
    async fn bounded<T, F>(&self, run: &Run<'_>, work: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        let done = match &self.lease {
            Some(g) => g.bounded(work).await,
            None => work.await,
        };
        done.map_err(|e| lost_lock_is_a_race(e, &run.layout.db))
    }

    /// Releases what is held. A server lock that could not be released stays recorded
    /// in the state folder: the next sync of this device releases it.
    pub(super) async fn release(self, state: &super::StateDir) -> Result<(), SyncError> {
        if let Some(g) = self.lease {
            if let Err(e) = g.release().await {
                tracing::warn!("could not release the lease lock: {e}");
            }
        }
        if let Some(g) = self.server {
            match g.release().await {
                Ok(()) => state.clear_server_lock()?,
                Err(e) => tracing::warn!("could not release the server lock: {e}"),
            }
        }
        Ok(())
    }
}

/// Commits the local vault (already merged) to the remote: the attachment files the
/// remote lacks, the database (the commit point), vault.json, the commit marker where
/// versions repeat, then the files of tombstoned attachments. Returns the commit's
/// version, recorded in `st` with the committed database as the new base.
pub(super) async fn push(
    vault: &mut Vault,
    run: &Run<'_>,
    lock: &mut CommitLock,
    st: &mut SyncState,
    report: &mut SyncReport,
    plan: &Plan,
) -> Result<Version, SyncError> {
    let storage = run.storage.as_ref();
    if run.layout.is_container() && !plan.live.is_empty() {
        return Err(SyncError::AttachmentsInContainer {
            files: plan.live.len(),
        });
    }
    if plan.remote_missing {
        storage.create_dir(&run.layout.dir).await?;
    }
    lock.begin(run, &plan.remote_version).await?;
    let remote_has = run.listed_names().await?;
    report.attachments.1 += push_attachments(vault, run, lock, plan, &remote_has).await?;
    let mut commit_file = run.state.temp_file("commit")?;
    let t = std::time::Instant::now();
    vault.copy_database_to(commit_file.path())?;
    commit_file.reopen()?; // the copy replaced the empty file: lock the new one
    tracing::debug!(ms = t.elapsed().as_millis() as u64, "copy database");
    // In the Enpass layout the upload is the container: vault.json, then the copy.
    let container = match run.layout.json {
        Some(_) => None,
        None => {
            let c = run.state.temp_file("container")?;
            syncfabric_vault::container::pack(vault.meta(), commit_file.path(), c.path())?;
            Some(c)
        }
    };
    let pre = lock.for_database(run, &plan.remote_version).await?;
    let db = &run.layout.db;
    let m = meter(
        run.opts.progress.as_ref(),
        Direction::Upload,
        db,
        "database",
    );
    let upload_file = container.as_ref().unwrap_or(&commit_file);
    let body = Body::from_file(upload_file.path()).await?;
    let entry = lock.bounded(run, upload(storage, db, body, pre, m)).await?;
    drop(container);
    // The commit point has passed.
    let version = entry.version.ok_or_else(|| {
        SyncError::Storage(StorageError::Corrupt {
            message: format!("no version after writing {db}"),
        })
    })?;
    report.uploaded_db = true;
    if let Some(json) = &run.layout.json {
        let meta_bytes = tokio::fs::read(vault.dir().join("vault.json")).await?;
        let m = meter(
            run.opts.progress.as_ref(),
            Direction::Upload,
            json,
            "vault.json",
        );
        upload(storage, json, Body::from(meta_bytes), lock.plain(), m).await?;
    }
    // Where versions can repeat, the commit marker seals the commit (under the same
    // lock); its version is the commit's.
    let seal = run.versioning.seal(storage, lock.plain(), db, version);
    let version = lock.bounded(run, seal).await?;
    run.state
        .record_commit(st, &commit_file, version.as_str(), super::sync::now_unix())?;
    drop(commit_file);
    report.attachments.2 += collect_garbage(run, lock, plan, &remote_has).await?;
    Ok(version)
}

/// Uploads the attachment files of the plan the remote lacks; returns how many.
async fn push_attachments(
    vault: &Vault,
    run: &Run<'_>,
    lock: &CommitLock,
    plan: &Plan,
    remote_has: &BTreeSet<String>,
) -> Result<usize, SyncError> {
    let create = lock.for_attachment(run);
    let missing: Vec<String> = plan
        .live
        .iter()
        .map(|a| attachment_file_name(a))
        .filter(|name| !remote_has.contains(name))
        .collect();
    let mut sent = 0;
    for (i, name) in missing.iter().enumerate() {
        let remote = run.layout.dir.join(name)?;
        let label = format!("attachment {} of {}", i + 1, missing.len());
        let m = meter(
            run.opts.progress.as_ref(),
            Direction::Upload,
            &remote,
            label,
        );
        let body = Body::from_file(&vault.dir().join(name)).await?;
        match upload(run.storage.as_ref(), &remote, body, create.clone(), m).await {
            Ok(_) | Err(StorageError::AlreadyExists { .. }) => sent += 1,
            Err(e) => return Err(lost_lock_is_a_race(e, &remote).into()),
        }
    }
    Ok(sent)
}

/// Step 5: deletes the files of attachments whose rows are tombstones, after the
/// commit; returns how many.
async fn collect_garbage(
    run: &Run<'_>,
    lock: &CommitLock,
    plan: &Plan,
    remote_has: &BTreeSet<String>,
) -> Result<usize, SyncError> {
    let mut deleted = 0;
    for a in plan.dead.difference(&plan.live) {
        let name = attachment_file_name(a);
        if remote_has.contains(&name) {
            let path = run.layout.dir.join(&name)?;
            run.storage.delete(&path, lock.plain()).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}
