//! Conflict copies a desktop sync client left beside the remote database.
//!
//! When a vault folder is also synced by a desktop client (Dropbox, OneDrive, iCloud
//! Drive, Nextcloud) and two machines wrote the database at once, the client keeps
//! both: the loser becomes `vault (Alice's conflicted copy 2026-12-01).enpassdb` or
//! the like (the names are recognised by [`syncfabric_folder::conflict_style`]). The
//! edits in such a copy are in no vault until someone merges it. Here:
//!
//! 1. [`find_conflict_copies`] lists them (any storage: it is a listing of the vault's
//!    remote folder);
//! 2. [`merge_conflict_copy`] downloads one, opens it with the vault's key (a copy of
//!    another vault or a damaged one is an error and is never touched again), and
//!    merges it into the local vault **two-way** (no base): which common ancestor the
//!    copy and the vault share is unknown, and a base newer than the copy would turn
//!    the copy's older rows into edits that undo newer ones. Two-way, nothing is lost:
//!    rows only in the copy are added, rows on both sides follow the merge's rules
//!    (the newer value wins, the other goes into history); a delete made only in the
//!    copy is not repeated here;
//! 3. the caller syncs (the merged rows are local edits: they are pushed), and only
//!    then calls [`remove_conflict_copy`], conditional on the version that was merged
//!    where the storage's conditional deletes are honest.

use super::limits::DownloadBound;
use super::plan::guard_counts;
use super::transfer::{download, fetch_missing_attachments, meter};
use super::{remote_layout, StateDir, SyncError, SyncOptions};
use crate::remote::Remote;
use syncfabric_core::progress::Direction;
use syncfabric_core::{Error as StorageError, Precondition, RemotePath, Version};
use syncfabric_merge::{merge_sources, MergeOptions};
use syncfabric_vault::Vault;

/// A conflict copy of the remote database, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConflictCopy {
    /// Where it is.
    pub path: RemotePath,
    /// Its size, as listed.
    pub size: u64,
    /// Its version, as listed (the delete is conditional on it where it can be).
    pub version: Option<Version>,
}

/// What merging one conflict copy did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyMerge {
    /// The local vault changed (the next sync pushes it).
    pub applied: bool,
    /// Rows edited on both sides (the newer value kept, the other in history).
    pub conflicts: usize,
    /// Attachment files fetched for rows the copy brought.
    pub attachments: usize,
    /// The merge's own summary.
    pub summary: String,
}

/// The conflict copies of `vault`'s remote database on `remote` (none when its
/// folder does not exist yet).
pub async fn find_conflict_copies(
    vault: &Vault,
    remote: &Remote,
) -> Result<Vec<ConflictCopy>, SyncError> {
    let layout = remote_layout(vault_uuid(vault)?)?;
    let Some(db_name) = layout.db.file_name() else {
        return Ok(Vec::new());
    };
    let listing = match remote.storage().list(&layout.dir).await {
        Ok(l) => l,
        Err(StorageError::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut copies: Vec<ConflictCopy> = listing
        .into_iter()
        .filter(|e| e.kind == syncfabric_core::EntryKind::File)
        .filter(|e| {
            e.path
                .file_name()
                .is_some_and(|n| syncfabric_folder::conflict_style(db_name, n).is_some())
        })
        .map(|e| ConflictCopy {
            path: e.path,
            size: e.size,
            version: e.version,
        })
        .collect();
    copies.sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
    Ok(copies)
}

/// Merges `copy` into the local vault (see the module docs); the remote is not
/// written. A copy that does not open with the vault's key is
/// [`SyncError::RemoteCorrupt`] naming it; the mass-delete guard of `opts` applies.
pub async fn merge_conflict_copy(
    vault: &mut Vault,
    remote: &Remote,
    state: &StateDir,
    opts: &SyncOptions,
    copy: &ConflictCopy,
) -> Result<CopyMerge, SyncError> {
    let storage = remote.storage().as_ref();
    let layout = remote_layout(vault_uuid(vault)?)?;
    let tmp = state.temp_file("conflict-copy")?;
    let progress = opts.progress.as_ref();
    let m = meter(progress, Direction::Download, &copy.path, "conflict copy");
    download(
        storage,
        &copy.path,
        &tmp,
        &DownloadBound::announced(copy.size),
        &m,
    )
    .await?;
    let snap = syncfabric_vault::open_snapshot_file(tmp.path(), vault.key()).map_err(|e| {
        SyncError::RemoteCorrupt(format!("{}: not a copy of this vault ({e})", copy.path))
    })?;
    let outcome = {
        let local = vault.rows()?;
        merge_sources(None, &local, &snap, &MergeOptions::default())?
    };
    drop(snap);
    let live = outcome.live_items;
    guard_counts(opts, live.local_lost, live.local)?;
    let mut report = CopyMerge {
        applied: outcome.local_needs_apply(),
        conflicts: outcome.conflicts.len(),
        attachments: 0,
        summary: outcome.report.to_string(),
    };
    if opts.dry_run {
        return Ok(report);
    }
    let wanted = &outcome.attachment_files.live;
    report.attachments =
        fetch_missing_attachments(vault, storage, state, &layout.dir, wanted, progress).await?;
    if report.applied {
        vault.apply(&outcome.to_local)?;
    }
    Ok(report)
}

/// Deletes a merged `copy`: conditional on the version that was listed where the
/// storage's conditional deletes are honest (a copy changed since is kept:
/// [`StorageError::PreconditionFailed`]); one already gone is fine.
pub async fn remove_conflict_copy(remote: &Remote, copy: &ConflictCopy) -> Result<(), SyncError> {
    let storage = remote.storage();
    let pre = match (&copy.version, storage.capabilities().conditional_delete) {
        (Some(v), true) => Precondition::IfMatch(v.clone()),
        _ => Precondition::None,
    };
    match storage.delete(&copy.path, pre).await {
        Ok(()) | Err(StorageError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn vault_uuid(vault: &Vault) -> Result<&str, SyncError> {
    vault.meta().vault_uuid().ok_or_else(|| {
        SyncError::Vault(syncfabric_vault::Error::Unsupported(
            "vault.json has no vault_uuid".into(),
        ))
    })
}
