//! One sync of one vault: the protocol of `ARCHITECTURE.md`, step by step.

use super::marker::Versioning;
use super::plan::*;
use super::state::{StateDir, SyncState};
use super::transfer::*;
use super::SyncError;
use crate::remote::Remote;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use syncfabric_core::lock::{LeaseGuard, LeaseLock, LeaseOptions};
use syncfabric_core::progress::{Direction, ProgressHook};
use syncfabric_core::server_lock::ServerLockGuard;
use syncfabric_core::LockOwner;
use syncfabric_core::{Body, Error as StorageError, Precondition, RemotePath, Storage};
use syncfabric_merge::{merge_sources, AttachmentFiles, MergeOptions, MergeOutcome};
use syncfabric_vault::{RowSource, Snapshot, SnapshotReader, Vault};

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
    /// How many times to start over after losing the race to commit.
    pub max_attempts: u32,
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
            max_attempts: 10,
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

/// Where a vault lives on the remote: `(<uuid>/, <uuid>/vault.enpassdb, <uuid>/vault.json)`.
pub fn remote_layout(vault_uuid: &str) -> Result<(RemotePath, RemotePath, RemotePath), SyncError> {
    let dir = RemotePath::parse(vault_uuid)?;
    if dir.is_root() || dir.segments().count() != 1 {
        return Err(SyncError::Storage(StorageError::InvalidInput {
            message: "a vault uuid must be one path segment".into(),
        }));
    }
    let db = dir.join("vault.enpassdb")?;
    let json = dir.join("vault.json")?;
    Ok((dir, db, json))
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

/// Syncs `vault` with its copy on `storage` (under `<vault_uuid>/`), keeping local
/// sync state in `state`.
///
/// On a storage whose capabilities do not include truthful `IfMatch`/`IfAbsent`
/// (pass a [`syncfabric_core::probe::ProbedStorage`] so the claims were tested), the
/// commit runs under the server's own folder lock where `Capabilities::server_lock`
/// says it has one (taken only for the commit; every write carries it and the server
/// refuses it once the lock is gone), else the slow path runs under the lease lock
/// `<vault_uuid>/.lock` and the commit is checked against the lease right before it
/// is written.
///
/// Errors leave the local vault as it was before the failing step: a remote that fails
/// verification is never merged, and the local vault changes only through one
/// transaction. A lost race (`PreconditionFailed` on commit) starts over, up to
/// `opts.max_attempts` times.
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
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match sync_once(vault, storage, state, opts, &uuid, &owner, attempts).await {
            Err(SyncError::Storage(StorageError::PreconditionFailed { .. }))
            | Err(SyncError::Storage(StorageError::AlreadyExists { .. }))
                if attempts < opts.max_attempts =>
            {
                // Another device committed between our read and our write: start over.
                let jitter = (std::process::id() as u64 * 7919 + attempts as u64 * 104_729) % 100;
                let wait = Duration::from_millis((50u64 << attempts.min(6)) + jitter);
                tracing::debug!(
                    attempt = attempts,
                    ?wait,
                    "lost the commit race; starting over"
                );
                tokio::time::sleep(wait).await;
            }
            Err(SyncError::Storage(StorageError::PreconditionFailed { .. }))
            | Err(SyncError::Storage(StorageError::AlreadyExists { .. })) => {
                return Err(SyncError::TooManyRaces { attempts })
            }
            other => return other,
        }
    }
}

async fn sync_once(
    vault: &mut Vault,
    storage: &Arc<dyn Storage>,
    state: &StateDir,
    opts: &SyncOptions,
    uuid: &str,
    owner: &LockOwner,
    attempts: u32,
) -> Result<SyncReport, SyncError> {
    let (dir, db_path, _) = remote_layout(uuid)?;
    let st = state.load()?;
    if !st.vault_uuid.is_empty() && st.vault_uuid != uuid {
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
    let versioning = Versioning::of(storage.as_ref(), &dir)?;
    let remote_entry = versioning.stat_db(storage.as_ref(), &db_path).await?;
    let local_hash = sha256_file(&vault.db_path())?;
    let local_changed = st.local_db_sha256.as_deref() != Some(local_hash.as_str());
    let remote_version = remote_entry.as_ref().and_then(|e| e.version.clone());
    let remote_unchanged = remote_version.is_some()
        && remote_version.as_ref().map(|v| v.as_str()) == st.remote_version.as_deref();
    if remote_unchanged && !local_changed {
        return Ok(report);
    }
    if remote_entry.is_none() && st.remote_version.is_some() && !opts.recreate_remote {
        return Err(SyncError::RemoteGone {
            path: db_path.to_string(),
        });
    }
    let caps = storage.capabilities();
    // Without truthful compare-and-swap, commits are serialised: by the server's own
    // folder lock where it has one (taken only for the commit, in `sync_slow`), else
    // by the lease lock around the whole slow path.
    let guard = if caps.has_truthful_cas() || caps.server_lock || opts.dry_run {
        None
    } else {
        Some(LeaseLock::acquire(storage.clone(), &dir, opts.lease.clone()).await?)
    };
    let mut server_lock = None;
    let result = sync_slow(
        vault,
        storage,
        state,
        opts,
        uuid,
        owner,
        guard.as_ref(),
        &mut server_lock,
        &versioning,
        st,
        report,
        remote_entry,
        local_changed,
    )
    .await;
    if let Some(g) = guard {
        if let Err(e) = g.release().await {
            tracing::warn!("could not release the lease lock: {e}");
        }
    }
    if let Some(g) = server_lock {
        match g.release().await {
            // Kept otherwise: the next sync releases it (see `device.rs`).
            Ok(()) => state.clear_server_lock()?,
            Err(e) => tracing::warn!("could not release the server lock: {e}"),
        }
    }
    result
}

/// A lock lost to another client (`Locked`: a lease taken over, or a server lock that
/// refused our write) is a lost race like a failed `IfMatch`: nothing of ours landed
/// after the takeover; start over.
pub(super) fn lost_lock_is_a_race(e: StorageError, path: &RemotePath) -> StorageError {
    match e {
        StorageError::Locked { .. } => StorageError::PreconditionFailed {
            path: path.to_string(),
        },
        other => other,
    }
}

#[allow(clippy::too_many_arguments)]
async fn sync_slow(
    vault: &mut Vault,
    shared: &Arc<dyn Storage>,
    state: &StateDir,
    opts: &SyncOptions,
    uuid: &str,
    owner: &LockOwner,
    guard: Option<&LeaseGuard>,
    server_lock: &mut Option<ServerLockGuard>,
    versioning: &Versioning,
    mut st: SyncState,
    mut report: SyncReport,
    remote_entry: Option<syncfabric_core::Entry>,
    local_changed: bool,
) -> Result<SyncReport, SyncError> {
    let storage: &dyn Storage = shared.as_ref();
    let (dir, db_path, json_path) = remote_layout(uuid)?;
    // Under a lease, look again: the first stat was taken before we held it.
    let remote_entry = if guard.is_some() {
        versioning.stat_db(storage, &db_path).await?
    } else {
        remote_entry
    };
    let remote_version = remote_entry.as_ref().and_then(|e| e.version.clone());
    let remote_unchanged = remote_version.is_some()
        && remote_version.as_ref().map(|v| v.as_str()) == st.remote_version.as_deref();
    if remote_unchanged && !local_changed {
        return Ok(report);
    }

    // Deleted when this function returns, whichever way (unless recorded as the base).
    let download_tmp = state.temp_file("download")?;
    // Replacing a corrupt remote takes the full path, which decides on it after the
    // download (a pull-only fast path would only fail on it).
    let fast = match fast_push(
        vault,
        state,
        opts,
        remote_unchanged,
        local_changed,
        &remote_version,
    )? {
        Some(plan) => Some(plan),
        None if opts.recreate_remote => None,
        None => {
            let ctx = PullCtx {
                dir: &dir,
                db_path: &db_path,
                json_path: &json_path,
                download_tmp: &download_tmp,
                remote_size: remote_entry.as_ref().map_or(0, |e| e.size),
                remote_version: remote_version.clone(),
                versioning,
            };
            fast_pull(
                vault,
                storage,
                state,
                opts,
                &st,
                &mut report,
                &ctx,
                remote_unchanged,
                local_changed,
            )
            .await?
        }
    };
    let plan = match fast {
        Some(plan) => plan,
        None => {
            // 2. The base, and the remote (downloaded only when it changed), verified and
            // opened as row sources: the merge streams them, no whole snapshot in memory.
            let base_file = state.base_db();
            // A base the current key cannot read means this device changed the master password
            // (or keyfile) since the last sync: the local vault is re-keyed.
            let mut rekeyed_locally = false;
            let mut force_upload = false;
            let base = if base_file.exists() && st.remote_version.is_some() {
                let t = std::time::Instant::now();
                let read = syncfabric_vault::open_snapshot_file(&base_file, vault.key());
                tracing::debug!(ms = t.elapsed().as_millis() as u64, "verify + open base");
                match read {
                    Ok(s) => Some(s),
                    Err(syncfabric_vault::Error::KeyChanged)
                    | Err(syncfabric_vault::Error::WrongKey) => {
                        rekeyed_locally = true;
                        None
                    }
                    // A damaged base is useless but harmless: merge two-way.
                    Err(e) => {
                        tracing::warn!("local base unreadable ({e}); merging without a base");
                        None
                    }
                }
            } else {
                None
            };
            // `remote_is_base`: the remote is unchanged since our last sync, so it is read
            // from the base file (no download).
            let (remote, remote_is_base, remote_version, downloaded): (
                Option<SnapshotReader>,
                bool,
                Option<syncfabric_core::Version>,
                bool,
            ) = match (&remote_entry, remote_unchanged, &base) {
                (None, _, _) => (None, false, None, false),
                (Some(_), true, Some(_)) => (None, true, remote_version.clone(), false),
                // Re-keyed here, and nobody committed since our last sync: the remote holds
                // nothing the local vault lacks, so the local vault is pushed as it is (the
                // remote, under the old key, could not be read anyway).
                (Some(_), true, None) if rekeyed_locally => {
                    (None, false, remote_version.clone(), false)
                }
                (Some(entry), _, _) => {
                    let paths = RemotePaths {
                        json: &json_path,
                        db: &db_path,
                        download_tmp: &download_tmp,
                        size: entry.size,
                    };
                    match fetch_remote(vault, storage, state, opts, &paths).await {
                        Ok((snap, v)) => {
                            report.downloaded_db = true;
                            let v = versioning.downloaded(v, remote_version.clone());
                            (Some(snap), false, v, true)
                        }
                        // Asked to replace a remote that does not verify: it counts as
                        // unchanged since the base (merge(base, local, base) = local),
                        // and the local vault is pushed over it below.
                        Err(SyncError::RemoteCorrupt(why)) if opts.recreate_remote => {
                            tracing::warn!("replacing the corrupt remote copy: {why}");
                            force_upload = true;
                            (None, base.is_some(), remote_version.clone(), false)
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            let have_remote = remote.is_some() || remote_is_base;
            if remote_entry.is_some() && remote_version.is_none() {
                return Err(SyncError::Storage(StorageError::Unsupported {
                    message: format!("{} gives no version for {db_path}", storage.describe()),
                }));
            }

            // 3. Merge: one walk over the three key-sorted sources.
            let t = std::time::Instant::now();
            let outcome: MergeOutcome = {
                let local = vault.rows()?;
                let empty = Snapshot::default();
                let remote_src: &dyn RowSource = match (&remote, remote_is_base, &base) {
                    (Some(r), _, _) => r,
                    (None, true, Some(b)) => b,
                    _ => &empty,
                };
                merge_sources(
                    base.as_ref().map(|b| b as &dyn RowSource),
                    &local,
                    remote_src,
                    &MergeOptions::default(),
                )?
                // The readers' transactions end here, before anything is written.
            };
            drop((base, remote));
            tracing::debug!(ms = t.elapsed().as_millis() as u64, "merge");
            report.conflicts = outcome.conflicts.len();
            let rendered = outcome.report.to_string();
            report.merge_report = Some(rendered);
            // Mass-delete guard: live items the merge takes away from either side.
            let live = outcome.live_items;
            guard_counts(opts, live.local_lost, live.local)?;
            if have_remote {
                guard_counts(opts, live.remote_lost, live.remote)?;
            }
            if opts.dry_run {
                report.outcome = SyncOutcome::DryRun;
                return Ok(report);
            }

            // Attachment files the merged vault needs locally come first, so the applied
            // database never references a file that is not there.
            let AttachmentFiles {
                live: merged_live,
                dead: merged_dead,
            } = outcome.attachment_files.clone();
            if have_remote {
                report.attachments.0 += fetch_missing_attachments(
                    vault,
                    storage,
                    state,
                    &dir,
                    &merged_live,
                    opts.progress.as_ref(),
                )
                .await?;
            }
            if outcome.local_needs_apply() {
                let t = std::time::Instant::now();
                vault.apply(&outcome.to_local)?;
                tracing::debug!(ms = t.elapsed().as_millis() as u64, "apply locally");
            }
            // The local vault is now merge(base, local, remote): it holds everything of
            // the downloaded copy, so that copy, not the older base, is what local and
            // remote have in common. Record it before trying to commit. Otherwise, when
            // the commit loses a race (or the process dies), the next merge would see
            // the remote rows just applied as *local* edits against the old base, and a
            // row deleted remotely since would look revived here ("undelete on one side
            // wins"): a stale undo of someone's delete, found by the never-lose run.
            // The local hash stays the old one, so the merge result still counts as a
            // local change to push.
            let mut downloaded = downloaded;
            if downloaded {
                if let Some(v) = &remote_version {
                    state.record_commit(&mut st, &download_tmp, v.as_str(), now_unix())?;
                    st.remote_version = Some(v.as_str().to_string());
                    state.save(&st)?;
                    downloaded = false; // recorded: the no-upload path must not again
                }
            }

            Plan {
                live: merged_live,
                dead: merged_dead,
                needs_upload: !have_remote || force_upload || outcome.remote_needs_upload(),
                applied: outcome.local_needs_apply(),
                remote_missing: !have_remote,
                downloaded,
                remote_version,
            }
        }
    };
    let committed_version;
    if plan.needs_upload {
        // 4. Attachments the remote lacks (immutable by uuid: IfAbsent), then the db.
        if plan.remote_missing {
            storage.create_dir(&dir).await?;
        }
        let caps = storage.capabilities();
        // The server's folder lock, taken only now: nobody else can write under `dir`
        // until it is released, and every write of ours below is refused by the server
        // once the lock is gone (fencing), so checking the version once is enough.
        let under = if guard.is_none() && !caps.has_truthful_cas() && caps.server_lock {
            let g =
                ServerLockGuard::acquire_as(shared.clone(), &dir, &opts.lease, Some(owner)).await?;
            let lock = g.precondition();
            let recorded = state.record_server_lock(g.lock());
            *server_lock = Some(g);
            recorded?;
            let now = versioning.stat_db(storage, &db_path).await?;
            if now.and_then(|e| e.version) != plan.remote_version {
                return Err(StorageError::PreconditionFailed {
                    path: db_path.to_string(),
                }
                .into());
            }
            Some(lock)
        } else {
            None
        };
        let remote_has: BTreeSet<String> = match storage.list(&dir).await {
            Ok(entries) => entries
                .iter()
                .filter_map(|e| e.path.file_name().map(str::to_string))
                .collect(),
            Err(StorageError::NotFound { .. }) => BTreeSet::new(),
            Err(e) => return Err(e.into()),
        };
        // An attachment file is named by its uuid and never changes, so where the
        // storage cannot promise IfAbsent (lease-lock storages) a plain write is just
        // as safe: the only file it could replace is the same bytes.
        let create = match &under {
            Some(lock) => lock.clone(),
            None if caps.if_absent => Precondition::IfAbsent,
            None => Precondition::None,
        };
        let missing: Vec<String> = plan
            .live
            .iter()
            .map(|a| attachment_file_name(a))
            .filter(|name| !remote_has.contains(name))
            .collect();
        for (i, name) in missing.iter().enumerate() {
            let local_file = vault.dir().join(name);
            let remote = dir.join(name)?;
            let label = format!("attachment {} of {}", i + 1, missing.len());
            let m = meter(opts.progress.as_ref(), Direction::Upload, &remote, label);
            let body = Body::from_file(&local_file).await?;
            match upload(storage, &remote, body, create.clone(), m).await {
                Ok(_) | Err(StorageError::AlreadyExists { .. }) => report.attachments.1 += 1,
                Err(e) => return Err(lost_lock_is_a_race(e, &remote).into()),
            }
        }
        let mut commit_file = state.temp_file("commit")?;
        let t = std::time::Instant::now();
        vault.copy_database_to(commit_file.path())?;
        commit_file.reopen()?; // the copy replaced the empty file: lock the new one
        tracing::debug!(ms = t.elapsed().as_millis() as u64, "copy database");
        let pre = match (&plan.remote_version, guard) {
            _ if under.is_some() => under.clone().unwrap_or(Precondition::None),
            // Without truthful CAS the lease is the only protection: re-check that we
            // still hold it and that nobody committed meanwhile, then write.
            (v, Some(g)) if !(caps.if_match && caps.if_absent) => {
                // A lease lost before the commit (another device took over) is a lost
                // race like a failed IfMatch: nothing was written, start over.
                g.check()
                    .await
                    .map_err(|e| lost_lock_is_a_race(e, &db_path))?;
                let now = versioning.stat_db(storage, &db_path).await?;
                if now.and_then(|e| e.version) != *v {
                    return Err(StorageError::PreconditionFailed {
                        path: db_path.to_string(),
                    }
                    .into());
                }
                Precondition::None
            }
            (Some(v), _) => Precondition::IfMatch(v.clone()),
            (None, _) => Precondition::IfAbsent,
        };
        let m = meter(
            opts.progress.as_ref(),
            Direction::Upload,
            &db_path,
            "database",
        );
        let body = Body::from_file(commit_file.path()).await?;
        let written = match guard {
            // Under a lease the commit may only land while the lease is certainly ours:
            // a write still retrying when it could have passed to another device is
            // abandoned, and the sync starts over like after a lost race.
            Some(g) => g
                .bounded(upload(storage, &db_path, body, pre, m))
                .await
                .map_err(|e| lost_lock_is_a_race(e, &db_path)),
            None => upload(storage, &db_path, body, pre, m)
                .await
                .map_err(|e| lost_lock_is_a_race(e, &db_path)),
        };
        let entry = match written {
            Ok(e) => e,
            Err(e) => {
                return Err(e.into());
            }
        };
        // The commit point has passed.
        let version = entry.version.ok_or_else(|| {
            SyncError::Storage(StorageError::Corrupt {
                message: format!("no version after writing {db_path}"),
            })
        })?;
        report.uploaded_db = true;
        let meta_bytes = tokio::fs::read(vault.dir().join("vault.json")).await?;
        let m = meter(
            opts.progress.as_ref(),
            Direction::Upload,
            &json_path,
            "vault.json",
        );
        upload(
            storage,
            &json_path,
            Body::from(meta_bytes),
            under.clone().unwrap_or(Precondition::None),
            m,
        )
        .await?;
        // Where versions can repeat, the commit marker seals the commit (under the same
        // lock); its version is the commit's.
        let seal = versioning.seal(
            storage,
            under.clone().unwrap_or(Precondition::None),
            version,
        );
        let version = match guard {
            Some(g) => g.bounded(seal).await,
            None => seal.await,
        }
        .map_err(|e| lost_lock_is_a_race(e, &db_path))?;
        state.record_commit(&mut st, &commit_file, version.as_str(), now_unix())?;
        drop(commit_file);
        committed_version = version;
        report.outcome = SyncOutcome::Pushed;

        // 5. Garbage: files of attachments whose rows are tombstones, after the commit.
        for a in plan.dead.difference(&plan.live) {
            let name = attachment_file_name(a);
            if remote_has.contains(&name) {
                storage
                    .delete(
                        &dir.join(&name)?,
                        under.clone().unwrap_or(Precondition::None),
                    )
                    .await?;
                report.attachments.2 += 1;
            }
        }
    } else {
        committed_version = plan.remote_version.clone().ok_or_else(|| {
            SyncError::Storage(StorageError::Corrupt {
                message: "remote has no version".into(),
            })
        })?;
        if plan.downloaded {
            state.record_commit(
                &mut st,
                &download_tmp,
                committed_version.as_str(),
                now_unix(),
            )?;
        }
        report.outcome = if plan.applied {
            SyncOutcome::Pulled
        } else {
            SyncOutcome::UpToDate
        };
    }

    st.vault_uuid = uuid.to_string();
    st.remote_version = Some(committed_version.as_str().to_string());
    st.local_db_sha256 = Some(sha256_file(&vault.db_path())?);
    st.last_sync = Some(now_unix());
    state.save(&st)?;
    report.remote_version = st.remote_version.clone();
    Ok(report)
}
