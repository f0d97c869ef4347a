//! Conflict copies a desktop sync client left beside the remote database.
//!
//! When a vault folder is also synced by a desktop client (Dropbox, OneDrive, iCloud
//! Drive, Nextcloud) and two machines wrote the database at once, the client keeps
//! both: the loser becomes `vault (Alice's conflicted copy 2026-12-01).enpassdb` or
//! the like (the names are recognised by [`syncfabric_core::conflict`]: the copies turn
//! up on any storage such a client also syncs, so the engine knows no provider's
//! strings). The edits in such a copy are in no vault until someone merges it. Here:
//!
//! 1. [`find_conflict_copies`] lists them (any storage: it is one listing of the
//!    vault's remote folder);
//! 2. [`merge_conflict_copy`] downloads one to a temp file and opens it read-only with
//!    the vault's key. The key is derived from the password *and the database's salt*
//!    (its first 16 bytes); every device writes the vault under the salt it was created
//!    with, which changes only with the master password. So a copy of this vault opens
//!    with the vault's own key, and one under another salt (another vault, or a
//!    password changed since) is [`SyncError::CopyUnreadable`], as is a damaged one:
//!    never merged, never deleted. A readable copy is merged into the local vault
//!    **three-way with the last synced base** as the common ancestor: an item changed
//!    only in the copy wins, one changed on both sides follows the merge's rules (the
//!    newer value current, the other in history), a delete in the copy is a delete.
//!    That is right only if the copy descends from that base: a copy written before it
//!    (another device's commit that lost the race against one we then synced) would,
//!    against it, turn its older rows into edits that undo newer ones. So the base is
//!    the newest of the last base and the journal's commits that the copy descends
//!    from (every item of it present in the copy, none of its item stamps newer than
//!    the copy's), and when none is, the merge runs without a base (two-way: rows only
//!    in the copy arrive, differing rows are conflicts won by the newer `updated_at`,
//!    the loser kept in history; nothing is lost, but an old delete may not repeat);
//! 3. the caller syncs (the merged rows are local edits: they are pushed), and only
//!    after that push landed calls [`remove_conflict_copy`]: conditional on the
//!    version that was read where the storage's conditional deletes and versions are
//!    honest, else a plain delete after a `stat` shows the copy unchanged.

use super::limits::DownloadBound;
use super::plan::guard_counts;
use super::state::SyncState;
use super::transfer::{download, fetch_missing_attachments, meter};
use super::{StateDir, SyncError, SyncOptions};
use crate::remote::Remote;
use std::path::{Path, PathBuf};
use syncfabric_core::progress::Direction;
use syncfabric_core::{Error as StorageError, Precondition, RemotePath, Version};
use syncfabric_merge::{merge_sources, MergeOptions};
use syncfabric_vault::{ItemStamps, RowSource, SnapshotReader, Vault, VaultKey};

/// A conflict copy of the remote database, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConflictCopy {
    /// Where it is.
    pub path: RemotePath,
    /// Its size, as listed.
    pub size: u64,
    /// Its version, as listed.
    pub version: Option<Version>,
}

/// Which common ancestor a copy was merged against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CopyBase {
    /// The base of this device's last sync.
    #[default]
    LastSync,
    /// An older commit of the sync journal (its sequence number).
    Journal(u64),
    /// None the copy descends from: merged two-way.
    None,
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
    /// The common ancestor the merge used.
    pub base: CopyBase,
    /// The copy's version when it was read (the download's, else the listed one):
    /// what [`remove_conflict_copy`] checks before deleting it.
    pub read_version: Option<Version>,
    /// The merge's own summary (titles and column names, no secret values).
    pub summary: String,
}

/// The conflict copies of `vault`'s remote database on `remote`, sorted by path (none
/// when its folder does not exist yet).
pub async fn find_conflict_copies(
    vault: &Vault,
    remote: &Remote,
) -> Result<Vec<ConflictCopy>, SyncError> {
    let layout = remote.layout().locate(vault_uuid(vault)?)?;
    let listing = match remote.storage().list(&layout.dir).await {
        Ok(l) => l,
        Err(StorageError::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    Ok(
        syncfabric_core::conflict::conflict_copies(&listing, &layout.db)
            .into_iter()
            .map(|c| ConflictCopy {
                path: c.entry.path,
                size: c.entry.size,
                version: c.entry.version,
            })
            .collect(),
    )
}

/// Merges `copy` into the local vault (see the module docs); the remote is not
/// written. A copy that does not open with the vault's key, or is damaged, is
/// [`SyncError::CopyUnreadable`]; the mass-delete guard of `opts` applies; with
/// `opts.dry_run` the merge is computed and reported, and nothing is written.
pub async fn merge_conflict_copy(
    vault: &mut Vault,
    remote: &Remote,
    state: &StateDir,
    opts: &SyncOptions,
    copy: &ConflictCopy,
) -> Result<CopyMerge, SyncError> {
    let storage = remote.storage().as_ref();
    let layout = remote.layout().locate(vault_uuid(vault)?)?;
    let mut tmp = state.temp_file("conflict-copy")?;
    let progress = opts.progress.as_ref();
    let m = meter(progress, Direction::Download, &copy.path, "conflict copy");
    let bound = DownloadBound::announced(copy.size);
    let read = download(storage, &copy.path, &tmp, &bound, &m).await?;
    if layout.is_container() {
        // A copy of the Enpass sync file: its database part is what merges.
        let db = state.temp_file("conflict-copy-db")?;
        let mut src = std::fs::File::open(tmp.path())?;
        syncfabric_vault::container::unpack(&mut src, db.path()).map_err(|e| {
            SyncError::CopyUnreadable {
                path: copy.path.to_string(),
                reason: e.to_string(),
            }
        })?;
        tmp = db;
    }
    let unreadable = |e: syncfabric_vault::Error| {
        SyncError::CopyUnreadable {
        path: copy.path.to_string(),
        reason: match e {
            syncfabric_vault::Error::KeyChanged | syncfabric_vault::Error::WrongKey => {
                "it does not open with this vault's key: another vault, or written under another master password".into()
            }
            other => other.to_string(),
        },
    }
    };
    let snap = syncfabric_vault::open_snapshot_file(tmp.path(), vault.key()).map_err(unreadable)?;
    let copy_stamps =
        syncfabric_vault::item_stamps_in_file(tmp.path(), vault.key()).map_err(unreadable)?;
    let (base, base_used) = ancestor(vault.key(), state, &state.load()?, &copy_stamps);
    let outcome = {
        let local = vault.rows()?;
        let base_src = base.as_ref().map(|b| b as &dyn RowSource);
        merge_sources(base_src, &local, &snap, &MergeOptions::default())?
    };
    drop((snap, base));
    let live = outcome.live_items;
    guard_counts(opts, live.local_lost, live.local)?;
    let mut report = CopyMerge {
        applied: outcome.local_needs_apply(),
        conflicts: outcome.conflicts.len(),
        attachments: 0,
        base: base_used,
        read_version: read.or_else(|| copy.version.clone()),
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

/// The newest committed database of this device's sync (the last base, then the
/// journal from newest to oldest) that the copy descends from, opened; `(None,
/// CopyBase::None)` when there is none. A candidate that does not open is passed over.
fn ancestor(
    key: &VaultKey,
    state: &StateDir,
    st: &SyncState,
    copy: &ItemStamps,
) -> (Option<SnapshotReader>, CopyBase) {
    let mut candidates: Vec<(PathBuf, CopyBase)> = Vec::new();
    if st.remote_version.is_some() {
        candidates.push((state.base_db(), CopyBase::LastSync));
    }
    for e in st.journal.iter().rev() {
        candidates.push((state.journal_file(e), CopyBase::Journal(e.seq)));
    }
    for (file, which) in candidates {
        if !descends(key, &file, copy) {
            continue;
        }
        match syncfabric_vault::open_snapshot_file(&file, key) {
            Ok(reader) => return (Some(reader), which),
            Err(e) => tracing::debug!(?which, "candidate base unreadable: {e}"),
        }
    }
    (None, CopyBase::None)
}

/// Whether a database with item stamps `copy` descends from the database `file`:
/// every item of `file` is in `copy`, and none has a newer stamp or more history
/// there. Item clocks are whole seconds, so a copy changed in the same second as the
/// candidate passes; a file that cannot be read does not.
fn descends(key: &VaultKey, file: &Path, copy: &ItemStamps) -> bool {
    if !file.exists() {
        return false;
    }
    let Ok(base) = syncfabric_vault::item_stamps_in_file(file, key) else {
        return false;
    };
    base.iter().all(|(uuid, b)| {
        copy.get(uuid).is_some_and(|c| {
            c.updated_at >= b.updated_at
                && c.meta_updated_at >= b.meta_updated_at
                && c.field_updated_at >= b.field_updated_at
                && c.fields_updated_at >= b.fields_updated_at
                && c.field_rows >= b.field_rows
                && c.history_bytes >= b.history_bytes
        })
    })
}

/// Deletes a merged `copy`, to be called only after a sync pushed what it brought.
/// Where the storage honours conditional deletes and its versions are strong, the
/// delete is conditional on `merged.read_version`; elsewhere a `stat` must show the
/// copy still at that version and size first. A copy changed since it was read is
/// kept: [`StorageError::PreconditionFailed`]. One already gone is fine.
pub async fn remove_conflict_copy(
    remote: &Remote,
    copy: &ConflictCopy,
    merged: &CopyMerge,
) -> Result<(), SyncError> {
    let storage = remote.storage();
    let caps = storage.capabilities();
    let changed = || {
        SyncError::Storage(StorageError::PreconditionFailed {
            path: copy.path.to_string(),
        })
    };
    let pre = match &merged.read_version {
        Some(v) if caps.conditional_delete && caps.strong_versions => {
            Precondition::IfMatch(v.clone())
        }
        _ => {
            let Some(now) = storage.stat(&copy.path).await? else {
                return Ok(());
            };
            if now.version != merged.read_version || now.size != copy.size {
                return Err(changed());
            }
            Precondition::None
        }
    };
    match storage.delete(&copy.path, pre).await {
        Ok(()) | Err(StorageError::NotFound { .. }) => Ok(()),
        // `IfMatch` on a file that is gone fails too: gone is fine.
        Err(StorageError::PreconditionFailed { .. }) => match storage.stat(&copy.path).await? {
            None => Ok(()),
            Some(_) => Err(changed()),
        },
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
