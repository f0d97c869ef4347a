//! What a sync will do, found before anything is committed: the push-only and
//! pull-only fast paths, and the guards on what a merge may take away.

use super::state::{SyncState, TempFile};
use super::sync::{now_unix, Run, Seen};
use super::transfer::{
    download_database, fetch_missing_attachments, fetch_remote, remote_read_error, RemotePaths,
};
use super::{SyncError, SyncOptions, SyncReport};
use std::collections::BTreeSet;
use syncfabric_core::{Error as StorageError, Version};
use syncfabric_merge::{merge_sources, AttachmentFiles, MergeOptions, MergeOutcome};
use syncfabric_vault::{RowSource, Snapshot, SnapshotReader, Vault};

/// What the commit step needs from the merge step.
pub(super) struct Plan {
    /// Attachment files the result references (live) and tombstoned ones.
    pub(super) live: BTreeSet<String>,
    pub(super) dead: BTreeSet<String>,
    /// The local vault must be committed to the remote.
    pub(super) needs_upload: bool,
    /// Remote changes were applied locally.
    pub(super) applied: bool,
    /// There is no remote database yet.
    pub(super) remote_missing: bool,
    /// The remote database was downloaded to the temp file.
    pub(super) downloaded: bool,
    /// The remote version the commit is conditional on.
    pub(super) remote_version: Option<syncfabric_core::Version>,
}

/// The push-only case: nobody committed since our last sync and the local vault
/// changed. `merge(base, local, base)` is the local vault itself, so the base is not
/// read as a snapshot and nothing is merged; the mass-delete guard runs on the live
/// item uuids of the base file and of the vault (one indexed query each).
/// `None` when this is not that case (or the base cannot be read this way, e.g.
/// after a local re-key): the full path handles it.
fn fast_push(vault: &Vault, run: &Run<'_>, seen: &Seen) -> Result<Option<Plan>, SyncError> {
    let (state, opts) = (run.state, run.opts);
    let base_file = state.base_db();
    if !(seen.unchanged && seen.local_changed) || opts.dry_run || !base_file.exists() {
        return Ok(None);
    }
    let t = std::time::Instant::now();
    let Ok(before) = syncfabric_vault::live_item_uuids_in_file(&base_file, vault.key()) else {
        return Ok(None);
    };
    guard_sets(opts, &before, &vault.live_item_uuids()?)?;
    let (mut live, mut dead) = (BTreeSet::new(), BTreeSet::new());
    for a in vault.attachments(None)?.into_iter().filter(|a| !a.inline) {
        if a.deleted {
            dead.insert(a.uuid);
        } else {
            live.insert(a.uuid);
        }
    }
    tracing::debug!(
        ms = t.elapsed().as_millis() as u64,
        "push-only: guard and attachment list"
    );
    Ok(Some(Plan {
        live,
        dead,
        needs_upload: true,
        applied: false,
        remote_missing: false,
        downloaded: false,
        remote_version: seen.version.clone(),
    }))
}

/// The pull-only case: the local vault is unchanged since our last sync and the remote
/// has a newer commit. Every commit descends from the one we last saw, so
/// `merge(base, base, remote)` is the remote itself: after the usual verification the
/// downloaded database replaces the local one (atomically), with no snapshot and no
/// merge. The mass-delete guard compares the live item uuids of base and remote.
async fn fast_pull(
    vault: &mut Vault,
    run: &Run<'_>,
    st: &SyncState,
    report: &mut SyncReport,
    seen: &Seen,
    download_tmp: &TempFile,
) -> Result<Option<Plan>, SyncError> {
    let (storage, state, opts) = (run.storage.as_ref(), run.state, run.opts);
    let (dir, db_path) = (&run.layout.dir, &run.layout.db);
    let base_file = state.base_db();
    if seen.unchanged
        || seen.local_changed
        || opts.dry_run
        || st.remote_version.is_none()
        || !base_file.exists()
    {
        return Ok(None);
    }
    let Ok(before) = syncfabric_vault::live_item_uuids_in_file(&base_file, vault.key()) else {
        return Ok(None);
    };
    let t = std::time::Instant::now();
    let progress = opts.progress.as_ref();
    let paths = RemotePaths {
        layout: &run.layout,
        download_tmp,
        size: seen.entry.as_ref().map_or(0, |e| e.size),
    };
    let (meta, version) = download_database(vault, storage, state, progress, &paths).await?;
    report.downloaded_db = true;
    syncfabric_vault::verify_database_file(download_tmp, vault.key())
        .map_err(|e| remote_read_error(e, download_tmp.path(), meta))?;
    tracing::debug!(
        ms = t.elapsed().as_millis() as u64,
        "pull-only: download and verify"
    );
    let after = syncfabric_vault::live_item_uuids_in_file(download_tmp, vault.key())
        .map_err(|e| remote_read_error(e, download_tmp.path(), meta))?;
    // Rows are never removed: a remote that lacks an item the base had does not descend
    // from our last commit (a lost update elsewhere). Let the full merge keep those rows.
    let base_all = syncfabric_vault::all_item_uuids_in_file(&base_file, vault.key())?;
    let remote_all = syncfabric_vault::all_item_uuids_in_file(download_tmp, vault.key())
        .map_err(|e| remote_read_error(e, download_tmp.path(), meta))?;
    if !base_all.is_subset(&remote_all) {
        tracing::warn!(
            "the remote lacks items of the last synced state; merging instead of adopting it"
        );
        return Ok(None);
    }
    // In the Enpass layout a remote is adopted only where it descends from our last
    // commit (see `full_merge`).
    if run.layout.is_container() && !descends(&base_file, download_tmp.path(), vault)? {
        return Ok(None);
    }

    guard_sets(opts, &before, &after)?;
    let (live, dead) = syncfabric_vault::attachment_files_in_file(download_tmp, vault.key())
        .map_err(|e| remote_read_error(e, download_tmp.path(), meta))?;
    report.attachments.0 +=
        fetch_missing_attachments(vault, storage, state, dir, &live, progress).await?;
    // The version stat'ed before the download, never one read after it: an older
    // version only makes the next commit fail its IfMatch and start over, while a newer
    // one would let it overwrite a commit we never saw.
    let Some(version) = run.versioning.downloaded(version, seen.version.clone()) else {
        return Err(SyncError::Storage(StorageError::NotFound {
            path: db_path.to_string(),
        }));
    };
    let t = std::time::Instant::now();
    vault.adopt_database_file(download_tmp)?;
    tracing::debug!(
        ms = t.elapsed().as_millis() as u64,
        "pull-only: adopt database"
    );
    Ok(Some(Plan {
        live,
        dead,
        needs_upload: false,
        applied: true,
        remote_missing: false,
        downloaded: true,
        remote_version: Some(version),
    }))
}

/// Whether the database file `remote` descends from the base file `base` (see
/// [`syncfabric_merge::descends_from`]).
fn descends(
    base: &std::path::Path,
    remote: &std::path::Path,
    vault: &Vault,
) -> Result<bool, SyncError> {
    let b = syncfabric_vault::open_snapshot_file(base, vault.key())?;
    let r = syncfabric_vault::open_snapshot_file(remote, vault.key())
        .map_err(|e| SyncError::RemoteCorrupt(format!("remote database: {e}")))?;
    Ok(syncfabric_merge::descends_from(&b, &r)?)
}

/// Refuses a change that takes more than the allowed share of `was` out of the live set.
pub(super) fn guard_sets<T: Ord>(
    opts: &SyncOptions,
    was: &BTreeSet<T>,
    now: &BTreeSet<T>,
) -> Result<(), SyncError> {
    guard_counts(opts, was.difference(now).count(), was.len())
}

/// Refuses a change that takes `gone` of `live` live items out of the live set, when
/// that is more than the allowed share.
pub(super) fn guard_counts(opts: &SyncOptions, gone: usize, live: usize) -> Result<(), SyncError> {
    if opts.allow_mass_delete {
        return Ok(());
    }
    if gone > opts.mass_delete_min && (gone as f64) > opts.mass_delete_share * live as f64 {
        return Err(SyncError::MassDelete {
            deleted: gone,
            live,
        });
    }
    Ok(())
}

/// Decides what this sync does and does everything before the commit: the push-only
/// case, the pull-only case (done here: the remote database replaces the local one),
/// or a full three-way merge applied locally. `None` for a dry run (the report then
/// says what the merge would do).
pub(super) async fn plan(
    vault: &mut Vault,
    run: &Run<'_>,
    st: &mut SyncState,
    report: &mut SyncReport,
    seen: &Seen,
    download_tmp: &TempFile,
) -> Result<Option<Plan>, SyncError> {
    if let Some(plan) = fast_push(vault, run, seen)? {
        return Ok(Some(plan));
    }
    // Replacing a corrupt remote takes the full path, which decides on it after the
    // download (a pull-only fast path would only fail on it).
    if !run.opts.recreate_remote {
        if let Some(plan) = fast_pull(vault, run, st, report, seen, download_tmp).await? {
            return Ok(Some(plan));
        }
    }
    full_merge(vault, run, st, report, seen, download_tmp).await
}

/// The base this device last synced with, opened as a row source; `rekeyed` when the
/// current key cannot read it (this device changed the master password or keyfile
/// since the last sync).
struct Base {
    reader: Option<SnapshotReader>,
    rekeyed: bool,
}

fn open_base(vault: &Vault, run: &Run<'_>, st: &SyncState) -> Base {
    let base_file = run.state.base_db();
    if !(base_file.exists() && st.remote_version.is_some()) {
        return Base {
            reader: None,
            rekeyed: false,
        };
    }
    let t = std::time::Instant::now();
    let read = syncfabric_vault::open_snapshot_file(&base_file, vault.key());
    tracing::debug!(ms = t.elapsed().as_millis() as u64, "verify + open base");
    match read {
        Ok(s) => Base {
            reader: Some(s),
            rekeyed: false,
        },
        Err(syncfabric_vault::Error::KeyChanged) | Err(syncfabric_vault::Error::WrongKey) => Base {
            reader: None,
            rekeyed: true,
        },
        // A damaged base is useless but harmless: merge two-way.
        Err(e) => {
            tracing::warn!("local base unreadable ({e}); merging without a base");
            Base {
                reader: None,
                rekeyed: false,
            }
        }
    }
}

/// The remote side of a full merge.
#[derive(Default)]
struct RemoteSide {
    /// The downloaded remote database, verified.
    reader: Option<SnapshotReader>,
    /// The remote is unchanged since our last sync: read from the base (no download).
    is_base: bool,
    /// The version the commit will be conditional on.
    version: Option<Version>,
    /// The remote database was downloaded to the temp file.
    downloaded: bool,
    /// The local vault must replace a corrupt remote copy.
    force_upload: bool,
}

async fn remote_side(
    vault: &Vault,
    run: &Run<'_>,
    report: &mut SyncReport,
    seen: &Seen,
    base: &Base,
    download_tmp: &TempFile,
) -> Result<RemoteSide, SyncError> {
    let same = |is_base| RemoteSide {
        is_base,
        version: seen.version.clone(),
        ..RemoteSide::default()
    };
    let entry = match (&seen.entry, seen.unchanged, &base.reader) {
        (None, _, _) => return Ok(RemoteSide::default()),
        (Some(_), true, Some(_)) => return Ok(same(true)),
        // Re-keyed here, and nobody committed since our last sync: the remote holds
        // nothing the local vault lacks, so the local vault is pushed as it is (the
        // remote, under the old key, could not be read anyway).
        (Some(_), true, None) if base.rekeyed => return Ok(same(false)),
        (Some(entry), _, _) => entry,
    };
    let paths = RemotePaths {
        layout: &run.layout,
        download_tmp,
        size: entry.size,
    };
    match fetch_remote(vault, run.storage.as_ref(), run.state, run.opts, &paths).await {
        Ok((snap, v)) => {
            report.downloaded_db = true;
            Ok(RemoteSide {
                reader: Some(snap),
                is_base: false,
                version: run.versioning.downloaded(v, seen.version.clone()),
                downloaded: true,
                force_upload: false,
            })
        }
        // Asked to replace a remote that does not verify: it counts as unchanged since
        // the base (merge(base, local, base) = local), and the local vault is pushed
        // over it.
        Err(SyncError::RemoteCorrupt(why)) if run.opts.recreate_remote => {
            tracing::warn!("replacing the corrupt remote copy: {why}");
            Ok(RemoteSide {
                force_upload: true,
                ..same(base.reader.is_some())
            })
        }
        Err(e) => Err(e),
    }
}

/// Steps 2 and 3 of the slow path: the base and the remote (downloaded only when it
/// changed), verified and opened as row sources; one streaming three-way merge; the
/// guards; the attachment files the result needs; the result applied locally.
async fn full_merge(
    vault: &mut Vault,
    run: &Run<'_>,
    st: &mut SyncState,
    report: &mut SyncReport,
    seen: &Seen,
    download_tmp: &TempFile,
) -> Result<Option<Plan>, SyncError> {
    let mut base = open_base(vault, run, st);
    let mut remote = remote_side(vault, run, report, seen, &base, download_tmp).await?;
    // In the Enpass layout the apps write with plain PUTs: a remote that changed may
    // be a copy merged before our last commit and written over it, and then a
    // three-way merge would take its older values for changes and drop ours. Unless the
    // remote holds every row of the base unchanged or later (a row of the same second
    // must be the same row: clocks have one-second resolution), it is merged without
    // the base: every difference decided by the rows' clocks, each losing value kept
    // in the field's history.
    if let (Some(b), Some(r)) = (&base.reader, &remote.reader) {
        if run.layout.is_container() && !syncfabric_merge::descends_from(b, r)? {
            tracing::warn!(
                "the remote does not hold our last commit (an Enpass app wrote over it); merging it without the base"
            );
            base.reader = None;
        }
    }
    let have_remote = remote.reader.is_some() || remote.is_base;
    if seen.entry.is_some() && remote.version.is_none() {
        return Err(SyncError::Storage(StorageError::Unsupported {
            message: format!(
                "{} gives no version for {}",
                run.storage.describe(),
                run.layout.db
            ),
        }));
    }
    let t = std::time::Instant::now();
    let outcome: MergeOutcome = {
        let local = vault.rows()?;
        let empty = Snapshot::default();
        let remote_src: &dyn RowSource = match (&remote.reader, remote.is_base, &base.reader) {
            (Some(r), _, _) => r,
            (None, true, Some(b)) => b,
            _ => &empty,
        };
        let base_src = base.reader.as_ref().map(|b| b as &dyn RowSource);
        merge_sources(base_src, &local, remote_src, &MergeOptions::default())?
        // The readers' transactions end here, before anything is written.
    };
    drop(base);
    remote.reader = None;
    tracing::debug!(ms = t.elapsed().as_millis() as u64, "merge");
    report.conflicts = outcome.conflicts.len();
    report.merge_report = Some(outcome.report.to_string());
    // Mass-delete guard: live items the merge takes away from either side.
    let live = outcome.live_items;
    guard_counts(run.opts, live.local_lost, live.local)?;
    if have_remote {
        guard_counts(run.opts, live.remote_lost, live.remote)?;
    }
    if run.opts.dry_run {
        return Ok(None);
    }
    let AttachmentFiles {
        live: merged_live,
        dead: merged_dead,
    } = outcome.attachment_files.clone();
    // Attachment files the merged vault needs locally come first, so the applied
    // database never references a file that is not there.
    if have_remote {
        let (storage, progress) = (run.storage.as_ref(), run.opts.progress.as_ref());
        report.attachments.0 += fetch_missing_attachments(
            vault,
            storage,
            run.state,
            &run.layout.dir,
            &merged_live,
            progress,
        )
        .await?;
    }
    if outcome.local_needs_apply() {
        let t = std::time::Instant::now();
        vault.apply(&outcome.to_local)?;
        tracing::debug!(ms = t.elapsed().as_millis() as u64, "apply locally");
    }
    let downloaded = remote.downloaded && !record_downloaded(run, st, &remote, download_tmp)?;
    Ok(Some(Plan {
        live: merged_live,
        dead: merged_dead,
        needs_upload: !have_remote || remote.force_upload || outcome.remote_needs_upload(),
        applied: outcome.local_needs_apply(),
        remote_missing: !have_remote,
        downloaded,
        remote_version: remote.version,
    }))
}

/// After a merge with a downloaded remote, the local vault holds everything of that
/// copy, so it, not the older base, is what local and remote have in common: recorded
/// before the commit is tried (returns whether it was). Otherwise, when the commit
/// loses a race (or the process dies), the next merge would see the remote rows just
/// applied as *local* edits against the old base, and a row deleted remotely since
/// would look revived here ("undelete on one side wins"): a stale undo of someone's
/// delete, found by the never-lose run. The local hash stays the old one, so the merge
/// result still counts as a local change to push.
fn record_downloaded(
    run: &Run<'_>,
    st: &mut SyncState,
    remote: &RemoteSide,
    download_tmp: &TempFile,
) -> Result<bool, SyncError> {
    let Some(v) = remote.version.as_ref().filter(|_| remote.downloaded) else {
        return Ok(false);
    };
    run.state
        .record_commit(st, download_tmp, v.as_str(), now_unix())?;
    st.remote_version = Some(v.as_str().to_string());
    run.state.save(st)?;
    Ok(true)
}
