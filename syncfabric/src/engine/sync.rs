//! One sync of one vault: the protocol of `ARCHITECTURE.md`, step by step.

use super::commit::CommitLock;
use super::layout::RemoteLayout;
use super::marker::Versioning;
use super::state::{StateDir, SyncState};
use super::SyncError;
use crate::remote::Remote;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use syncfabric_core::lock::LeaseOptions;
use syncfabric_core::progress::ProgressHook;
use syncfabric_core::retry::RetryPolicy;
use syncfabric_core::{Entry, Error as StorageError, LockOwner, RemotePath, Storage, Version};
use syncfabric_vault::Vault;

/// How one sync behaves.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// Compute and report the merge, change nothing locally or remotely.
    pub dry_run: bool,
    /// Let a merge that deletes many items through (the mass-delete guard is off).
    pub allow_mass_delete: bool,
    /// The guard trips when a merge removes more than this share of the live items...
    pub mass_delete_share: f64,
    /// ...and more than this many items.
    pub mass_delete_min: usize,
    /// The waits before starting over after losing the race to commit (another device
    /// committed first), and how many attempts in all (`max_attempts`).
    pub race: RetryPolicy,
    /// The lease lock used on storages whose conditional writes are not truthful.
    pub lease: LeaseOptions,
    /// Told the byte counts of every upload and download of the sync (the database,
    /// each attachment file as `"attachment N of M"`, `vault.json`); see
    /// [`syncfabric_core::progress`] for the order of updates. A download that breaks
    /// off and starts again is reported as a restart from 0. `None`: no reports.
    pub progress: Option<ProgressHook>,
    /// Upload this vault as the remote's copy when the remote database is gone or does
    /// not verify, instead of failing with [`SyncError::RemoteGone`] or
    /// [`SyncError::RemoteCorrupt`]. (A remote that lacks the vault because nobody
    /// pushed it yet is always created.)
    pub recreate_remote: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            dry_run: false,
            allow_mass_delete: false,
            mass_delete_share: 0.5,
            mass_delete_min: 5,
            race: RetryPolicy {
                min_delay: std::time::Duration::from_millis(100),
                max_delay: std::time::Duration::from_secs(4),
                max_attempts: 10,
                max_total: std::time::Duration::from_secs(600),
                ..RetryPolicy::default()
            },
            lease: LeaseOptions {
                label: "syncfabric".into(),
                ..LeaseOptions::default()
            },
            progress: None,
            recreate_remote: false,
        }
    }
}

/// What a sync did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncOutcome {
    /// Nothing changed on either side.
    UpToDate,
    /// Remote changes were applied locally; nothing had to be uploaded.
    Pulled,
    /// Local changes (merged with any remote ones) were committed to the remote.
    Pushed,
    /// `dry_run`: the report says what would happen.
    DryRun,
}

/// The result of one sync.
#[derive(Clone, Debug)]
pub struct SyncReport {
    /// What happened.
    pub outcome: SyncOutcome,
    /// Attempts made (more than one after losing a race).
    pub attempts: u32,
    /// Whether the remote database was downloaded.
    pub downloaded_db: bool,
    /// Whether a new remote database was committed.
    pub uploaded_db: bool,
    /// Attachment files downloaded / uploaded / deleted remotely.
    pub attachments: (usize, usize, usize),
    /// Conflicts resolved by the merge.
    pub conflicts: usize,
    /// The merge report, readable by a person, without secrets.
    pub merge_report: Option<String>,
    /// The remote database version after the sync.
    pub remote_version: Option<String>,
}

pub(super) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// SHA-256 of a file, hex.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = openssl::sha::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finish()))
}

/// Syncs `vault` with its copy on `remote` (under `<vault_uuid>/`), keeping local
/// sync state in `state`.
///
/// The commit is protected as the remote's verdict proved possible (see
/// [`crate::remote::Remote`] and the `commit` module): compare-and-swap on the database
/// where conditional writes are truthful; else the server's own folder lock where it
/// enforces one (taken only for the commit; every write carries it and the server
/// refuses it once the lock is gone); else the lease lock `<vault_uuid>/.lock` around
/// the slow path, checked right before the database is written.
///
/// Errors leave the local vault as it was before the failing step: a remote that fails
/// verification is never merged, and the local vault changes only through one
/// transaction. A lost race (`PreconditionFailed` on commit) starts over after a
/// backoff of [`SyncOptions::race`], up to its `max_attempts` attempts in all.
pub async fn sync_vault(
    vault: &mut Vault,
    remote: &Remote,
    state: &StateDir,
    opts: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    let storage = remote.storage();
    let uuid = vault
        .meta()
        .vault_uuid()
        .ok_or_else(|| {
            SyncError::Vault(syncfabric_vault::Error::Unsupported(
                "vault.json has no vault_uuid".into(),
            ))
        })?
        .to_string();
    // One sync at a time per state folder, and this device's lock identity; a server
    // lock a crashed run of this device left is released first (see `device.rs`).
    let _local = super::device::hold_local(state, opts.lease.acquire_timeout).await?;
    let owner = LockOwner::new(&state.device_id()?, &opts.lease.label)?.exclusive();
    super::device::release_recorded_lock(state, storage.as_ref()).await;
    let layout = remote.layout().locate(&uuid)?;
    let run = Run {
        storage,
        state,
        opts,
        owner: &owner,
        versioning: Versioning::of(storage.as_ref(), &layout.dir, layout.is_container())?,
        layout,
        uuid: &uuid,
    };
    let mut waits = opts.race.delays();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let lost_race = match sync_once(vault, &run, attempts).await {
            Err(SyncError::Storage(StorageError::PreconditionFailed { .. }))
            | Err(SyncError::Storage(StorageError::AlreadyExists { .. })) => true,
            other => return other,
        };
        // Another device committed between our read and our write: start over.
        let Some(wait) = waits.next().filter(|_| lost_race) else {
            return Err(SyncError::TooManyRaces { attempts });
        };
        tracing::debug!(
            attempt = attempts,
            ?wait,
            "lost the commit race; starting over"
        );
        tokio::time::sleep(wait).await;
    }
}

/// What every step of one sync works with.
pub(super) struct Run<'a> {
    pub(super) storage: &'a Arc<dyn Storage>,
    pub(super) state: &'a StateDir,
    pub(super) opts: &'a SyncOptions,
    /// This device's identity in locks.
    pub(super) owner: &'a LockOwner,
    pub(super) layout: RemoteLayout,
    pub(super) uuid: &'a str,
    /// How commits are told apart (the storage's versions or the commit marker).
    pub(super) versioning: Versioning,
}

/// What a look at both sides found.
pub(super) struct Seen {
    /// The remote database's entry (`None`: there is none).
    pub(super) entry: Option<Entry>,
    /// Its version (the commit marker's where versions repeat).
    pub(super) version: Option<Version>,
    /// The remote is the commit this device last synced with.
    pub(super) unchanged: bool,
    /// The local vault changed since the last sync.
    pub(super) local_changed: bool,
}

impl Seen {
    fn nothing_to_do(&self) -> bool {
        self.unchanged && !self.local_changed
    }
}

impl Run<'_> {
    /// One `stat` of the remote database (and of the commit marker where versions can
    /// repeat), against what `st` recorded.
    async fn look(&self, st: &SyncState, local_changed: bool) -> Result<Seen, SyncError> {
        let entry = self
            .versioning
            .stat_db(self.storage.as_ref(), &self.layout.db)
            .await?;
        let version = entry.as_ref().and_then(|e| e.version.clone());
        let unchanged = version.is_some()
            && version.as_ref().map(|v| v.as_str()) == st.remote_version.as_deref();
        Ok(Seen {
            entry,
            version,
            unchanged,
            local_changed,
        })
    }

    /// `PreconditionFailed` unless the remote database is still at `seen` (a commit
    /// by another device since is a lost race).
    pub(super) async fn check_unchanged(&self, seen: &Option<Version>) -> Result<(), SyncError> {
        let now = self
            .versioning
            .stat_db(self.storage.as_ref(), &self.layout.db)
            .await?;
        let now = now.and_then(|e| e.version);
        if now != *seen {
            tracing::debug!(?seen, ?now, "the remote database changed since the look");
            return Err(StorageError::PreconditionFailed {
                path: self.layout.db.to_string(),
            }
            .into());
        }
        Ok(())
    }

    /// The names of the files in the vault's remote folder (none when it is missing).
    pub(super) async fn listed_names(&self) -> Result<BTreeSet<String>, SyncError> {
        match self.storage.list(&self.layout.dir).await {
            Ok(entries) => Ok(entries
                .iter()
                .filter_map(|e| e.path.file_name().map(str::to_string))
                .collect()),
            Err(StorageError::NotFound { .. }) => Ok(BTreeSet::new()),
            Err(e) => Err(e.into()),
        }
    }
}

/// One attempt: the fast path (one `stat`), else the slow path under the commit lock.
async fn sync_once(
    vault: &mut Vault,
    run: &Run<'_>,
    attempts: u32,
) -> Result<SyncReport, SyncError> {
    let st = run.state.load()?;
    if !st.vault_uuid.is_empty() && st.vault_uuid != run.uuid {
        return Err(SyncError::OtherVault(format!(
            "local sync state belongs to vault {:?}",
            st.vault_uuid
        )));
    }
    let report = SyncReport {
        outcome: SyncOutcome::UpToDate,
        attempts,
        downloaded_db: false,
        uploaded_db: false,
        attachments: (0, 0, 0),
        conflicts: 0,
        merge_report: None,
        remote_version: st.remote_version.clone(),
    };
    // 1. The fast path: one stat (and the commit marker where versions can repeat).
    let local_hash = sha256_file(&vault.db_path())?;
    let local_changed = st.local_db_sha256.as_deref() != Some(local_hash.as_str());
    let seen = run.look(&st, local_changed).await?;
    if seen.nothing_to_do() {
        return Ok(report);
    }
    if seen.entry.is_none() && st.remote_version.is_some() && !run.opts.recreate_remote {
        return Err(SyncError::RemoteGone {
            path: run.layout.db.to_string(),
        });
    }
    let mut lock = CommitLock::choose(run).await?;
    let result = sync_slow(vault, run, &mut lock, st, report, seen).await;
    lock.release(run.state).await?;
    result
}

/// A lock lost to another client (`Locked`: a lease taken over, or a server lock that
/// refused our write) is a lost race like a failed `IfMatch`: nothing of ours landed
/// after the takeover; start over.
pub(super) fn lost_lock_is_a_race(e: StorageError, path: &RemotePath) -> StorageError {
    match e {
        StorageError::Locked { .. } => {
            tracing::debug!("the lease was lost before the commit");
            StorageError::PreconditionFailed {
                path: path.to_string(),
            }
        }
        other => other,
    }
}

/// The slow path: plan (push-only, pull-only or a full merge), then commit or record
/// the pull, then record the new state.
async fn sync_slow(
    vault: &mut Vault,
    run: &Run<'_>,
    lock: &mut CommitLock,
    mut st: SyncState,
    mut report: SyncReport,
    seen: Seen,
) -> Result<SyncReport, SyncError> {
    // Under a lease, look again: the first stat was taken before we held it.
    let seen = if lock.holds_lease() {
        run.look(&st, seen.local_changed).await?
    } else {
        seen
    };
    if seen.nothing_to_do() {
        return Ok(report);
    }
    // Deleted when this function returns, whichever way (unless recorded as the base).
    let download_tmp = run.state.temp_file("download")?;
    let plan =
        match super::plan::plan(vault, run, &mut st, &mut report, &seen, &download_tmp).await? {
            Some(plan) => plan,
            None => {
                report.outcome = SyncOutcome::DryRun;
                return Ok(report);
            }
        };
    let committed = if plan.needs_upload {
        let v = super::commit::push(vault, run, lock, &mut st, &mut report, &plan).await?;
        report.outcome = SyncOutcome::Pushed;
        v
    } else {
        let v = plan.remote_version.clone().ok_or_else(|| {
            SyncError::Storage(StorageError::Corrupt {
                message: "remote has no version".into(),
            })
        })?;
        if plan.downloaded {
            run.state
                .record_commit(&mut st, &download_tmp, v.as_str(), now_unix())?;
        }
        report.outcome = if plan.applied {
            SyncOutcome::Pulled
        } else {
            SyncOutcome::UpToDate
        };
        v
    };
    st.vault_uuid = run.uuid.to_string();
    st.remote_version = Some(committed.as_str().to_string());
    st.local_db_sha256 = Some(sha256_file(&vault.db_path())?);
    st.last_sync = Some(now_unix());
    run.state.save(&st)?;
    report.remote_version = st.remote_version.clone();
    Ok(report)
}
