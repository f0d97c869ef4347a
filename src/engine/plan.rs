//! What a sync will do, found before anything is committed: the push-only and
//! pull-only fast paths, and the guards on what a merge may take away.

use super::limits::DownloadBound;
use super::marker::Versioning;
use super::state::{StateDir, SyncState, TempFile};
use super::SyncError;
use std::collections::BTreeSet;
use syncfabric_core::progress::Direction;
use syncfabric_core::{Error as StorageError, RemotePath, Storage};
use syncfabric_vault::Vault;

use super::sync::*;
use super::transfer::*;

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
pub(super) fn fast_push(
    vault: &Vault,
    state: &StateDir,
    opts: &SyncOptions,
    remote_unchanged: bool,
    local_changed: bool,
    remote_version: &Option<syncfabric_core::Version>,
) -> Result<Option<Plan>, SyncError> {
    let base_file = state.base_db();
    if !(remote_unchanged && local_changed) || opts.dry_run || !base_file.exists() {
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
        remote_version: remote_version.clone(),
    }))
}

/// Paths one sync works with.
pub(super) struct PullCtx<'a> {
    pub(super) dir: &'a RemotePath,
    pub(super) db_path: &'a RemotePath,
    pub(super) json_path: &'a RemotePath,
    pub(super) download_tmp: &'a TempFile,
    /// The size the `stat` of the database announced.
    pub(super) remote_size: u64,
    pub(super) remote_version: Option<syncfabric_core::Version>,
    /// How commits are told apart (the storage's versions or the commit marker).
    pub(super) versioning: &'a Versioning,
}

/// The pull-only case: the local vault is unchanged since our last sync and the remote
/// has a newer commit. Every commit descends from the one we last saw, so
/// `merge(base, base, remote)` is the remote itself: after the usual verification the
/// downloaded database replaces the local one (atomically), with no snapshot and no
/// merge. The mass-delete guard compares the live item uuids of base and remote.
#[allow(clippy::too_many_arguments)]
pub(super) async fn fast_pull(
    vault: &mut Vault,
    storage: &dyn Storage,
    state: &StateDir,
    opts: &SyncOptions,
    st: &SyncState,
    report: &mut SyncReport,
    ctx: &PullCtx<'_>,
    remote_unchanged: bool,
    local_changed: bool,
) -> Result<Option<Plan>, SyncError> {
    let base_file = state.base_db();
    if remote_unchanged
        || local_changed
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
    let meta = check_remote_meta(
        vault,
        storage,
        ctx.json_path,
        &state.temp_path("json"),
        progress,
    )
    .await?;
    let db_meter = meter(progress, Direction::Download, ctx.db_path, "database");
    let bound = DownloadBound::announced(ctx.remote_size);
    let version = download(storage, ctx.db_path, ctx.download_tmp, &bound, &db_meter).await?;
    report.downloaded_db = true;
    syncfabric_vault::verify_database_file(ctx.download_tmp, vault.key())
        .map_err(|e| remote_read_error(e, ctx.download_tmp.path(), meta))?;
    tracing::debug!(
        ms = t.elapsed().as_millis() as u64,
        "pull-only: download and verify"
    );
    let after = syncfabric_vault::live_item_uuids_in_file(ctx.download_tmp, vault.key())
        .map_err(|e| remote_read_error(e, ctx.download_tmp.path(), meta))?;
    // Rows are never removed: a remote that lacks an item the base had does not descend
    // from our last commit (a lost update elsewhere). Let the full merge keep those rows.
    let base_all = syncfabric_vault::all_item_uuids_in_file(&base_file, vault.key())?;
    let remote_all = syncfabric_vault::all_item_uuids_in_file(ctx.download_tmp, vault.key())
        .map_err(|e| remote_read_error(e, ctx.download_tmp.path(), meta))?;
    if !base_all.is_subset(&remote_all) {
        tracing::warn!(
            "the remote lacks items of the last synced state; merging instead of adopting it"
        );
        return Ok(None);
    }
    guard_sets(opts, &before, &after)?;
    let (live, dead) = syncfabric_vault::attachment_files_in_file(ctx.download_tmp, vault.key())
        .map_err(|e| remote_read_error(e, ctx.download_tmp.path(), meta))?;
    report.attachments.0 +=
        fetch_missing_attachments(vault, storage, state, ctx.dir, &live, progress).await?;
    // The version stat'ed before the download, never one read after it: an older
    // version only makes the next commit fail its IfMatch and start over, while a newer
    // one would let it overwrite a commit we never saw.
    let Some(version) = ctx
        .versioning
        .downloaded(version, ctx.remote_version.clone())
    else {
        return Err(SyncError::Storage(StorageError::NotFound {
            path: ctx.db_path.to_string(),
        }));
    };
    let t = std::time::Instant::now();
    vault.adopt_database_file(ctx.download_tmp)?;
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
