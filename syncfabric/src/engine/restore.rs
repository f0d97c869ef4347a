//! "Restore from cloud" and undoing a bad push from the journal.

use super::limits::DownloadBound;
use super::marker::Versioning;
use super::state::{StateDir, SyncState, TempFile};
use super::SyncError;
use crate::remote::Remote;
use std::path::{Path, PathBuf};
use syncfabric_core::progress::{Direction, ProgressHook};
use syncfabric_core::{Error as StorageError, RemotePath};
use syncfabric_vault::Vault;

use super::sync::*;
use super::transfer::*;
use super::RemoteLayout;

/// "Restore from cloud": makes a new local copy of the vault `vault_uuid` from
/// `storage` in the empty folder `dest`, and the sync state that goes with it, so
/// the next sync is a fast path. The copy is verified (opened with the password and
/// keyfile) before it is kept.
pub async fn restore_from_remote(
    remote: &Remote,
    vault_uuid: &str,
    dest: &Path,
    state: &StateDir,
    password: &syncfabric_vault::Secret,
    keyfile: Option<&syncfabric_vault::Keyfile>,
) -> Result<Vault, SyncError> {
    restore_from_remote_with_progress(remote, vault_uuid, dest, state, password, keyfile, None)
        .await
}

/// [`restore_from_remote`], telling `progress` the byte counts of each download
/// (`vault.json`, `database`, `attachment N of M`), as [`SyncOptions::progress`] does.
///
/// Every download is bounded as in a sync (see [`super::limits`]). A restore that fails
/// removes what it made: the staging folder `dest/.syncfabric-restore`, the files it
/// moved into `dest`, `dest` itself if it made it, and the state files it wrote.
pub async fn restore_from_remote_with_progress(
    remote: &Remote,
    vault_uuid: &str,
    dest: &Path,
    state: &StateDir,
    password: &syncfabric_vault::Secret,
    keyfile: Option<&syncfabric_vault::Keyfile>,
    progress: Option<&ProgressHook>,
) -> Result<Vault, SyncError> {
    let storage = remote.storage().as_ref();
    let layout = remote.layout().locate(vault_uuid)?;
    let RemoteLayout {
        dir,
        db: db_path,
        json: json_path,
    } = layout.clone();
    let mut undo = RestoreUndo::start(dest)?;
    let staging = undo.staging.clone();
    // Stat before the download: see fast_pull on why never after.
    let versioning = Versioning::of(storage, &dir, layout.is_container())?;
    let stated = versioning
        .stat_db(storage, &db_path)
        .await?
        .ok_or_else(|| {
            SyncError::Storage(StorageError::NotFound {
                path: db_path.to_string(),
            })
        })?;
    let fetch = |remote: RemotePath, name: String, bound: DownloadBound, label: String| {
        let staging = staging.clone();
        async move {
            let tmp = TempFile::create_at(staging.join(format!(".tmp-{name}")))?;
            let m = meter(progress, Direction::Download, &remote, label);
            let v = download(storage, &remote, &tmp, &bound, &m).await?;
            tmp.persist(&staging.join(&name))?;
            Ok::<_, SyncError>(v)
        }
    };
    let db_bound = DownloadBound::announced(stated.size);
    let with_download = match json_path {
        Some(json_path) => {
            let json_bound = DownloadBound::vault_json();
            fetch(
                json_path,
                "vault.json".into(),
                json_bound,
                "vault.json".into(),
            )
            .await?;
            let name = "vault.enpassdb".to_string();
            fetch(db_path.clone(), name, db_bound, "database".into()).await?
        }
        None => {
            let name = syncfabric_vault::container::FILE_NAME.to_string();
            let v = fetch(db_path.clone(), name.clone(), db_bound, "database".into()).await?;
            unpack_staged(&staging, &name, vault_uuid)?;
            v
        }
    };
    let version = versioning
        .downloaded(with_download, stated.version)
        .ok_or_else(|| {
            SyncError::Storage(StorageError::NotFound {
                path: db_path.to_string(),
            })
        })?;
    // Verify before anything is moved into place.
    let probe = Vault::open(&staging, password, keyfile)?;
    // `open` checks only the key, header and length: a remote file gets every page.
    probe.verify()?;
    let (live, _) = syncfabric_vault::attachment_files_in_file(probe.db_path(), probe.key())?;
    drop(probe);
    let sizes = if live.is_empty() {
        Default::default()
    } else {
        listed_sizes(storage, &dir).await?
    };
    for (i, a) in live.iter().enumerate() {
        let name = checked_attachment_file_name(a)?;
        let remote = dir.join(&name)?;
        let bound = DownloadBound::announced(announced_size(storage, &sizes, &remote).await?);
        let label = format!("attachment {} of {}", i + 1, live.len());
        fetch(remote, name, bound, label).await?;
    }
    undo.move_into_place()?;
    let vault = Vault::open(dest, password, keyfile)?;
    let mut st = SyncState {
        vault_uuid: vault.meta().vault_uuid().unwrap_or(vault_uuid).to_string(),
        ..Default::default()
    };
    undo.state_files(state);
    state.record_commit(&mut st, vault.db_path(), version.as_str(), now_unix())?;
    st.remote_version = Some(version.as_str().to_string());
    st.local_db_sha256 = Some(sha256_file(&vault.db_path())?);
    st.last_sync = Some(now_unix());
    state.save(&st)?;
    undo.done();
    Ok(vault)
}

/// Splits the Enpass container `name` in `staging` into `vault.enpassdb` and
/// `vault.json` there, and removes it. Its vault must be `vault_uuid` (any when empty).
fn unpack_staged(staging: &Path, name: &str, vault_uuid: &str) -> Result<(), SyncError> {
    let container = staging.join(name);
    let mut src = std::fs::File::open(&container)?;
    let meta = syncfabric_vault::container::unpack(&mut src, &staging.join("vault.enpassdb"))
        .map_err(|e| SyncError::RemoteCorrupt(format!("remote {name}: {e}")))?;
    let found = meta.vault_uuid().unwrap_or("");
    if !vault_uuid.is_empty() && found != vault_uuid {
        return Err(SyncError::OtherVault(format!(
            "the Enpass sync file holds vault {found:?}, not {vault_uuid:?}"
        )));
    }
    meta.write_atomic(&staging.join("vault.json"))?;
    drop(src);
    std::fs::remove_file(&container)?;
    Ok(())
}

/// What a restore made, removed again on drop unless [`RestoreUndo::done`] was called:
/// a guard, so that every failure path (an error, a panic, a cancelled future) cleans up.
struct RestoreUndo {
    dest: PathBuf,
    /// `dest` did not exist before.
    made_dest: bool,
    staging: PathBuf,
    /// Files moved from the staging folder into `dest`, and state files written.
    files: Vec<PathBuf>,
    armed: bool,
}

impl RestoreUndo {
    /// Creates `dest` if needed and a fresh, private staging folder in it.
    fn start(dest: &Path) -> Result<RestoreUndo, SyncError> {
        let made_dest = std::fs::symlink_metadata(dest).is_err();
        syncfabric_vault::create_private_dir_all(dest)?;
        let staging = dest.join(".syncfabric-restore");
        // A crashed restore's leftovers: the name is ours (a link there is removed, not
        // followed).
        match std::fs::remove_dir_all(&staging) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let undo = RestoreUndo {
            dest: dest.to_path_buf(),
            made_dest,
            staging,
            files: Vec::new(),
            armed: true,
        };
        let mut b = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(&undo.staging)?;
        Ok(undo)
    }

    /// Moves every staged file into `dest`, refusing to replace anything there.
    fn move_into_place(&mut self) -> Result<(), SyncError> {
        for entry in std::fs::read_dir(&self.staging)? {
            let entry = entry?;
            let to = self.dest.join(entry.file_name());
            if std::fs::symlink_metadata(&to).is_ok() {
                return Err(SyncError::Storage(StorageError::InvalidInput {
                    message: format!(
                        "{} already exists; restore into an empty folder",
                        to.display()
                    ),
                }));
            }
            std::fs::rename(entry.path(), &to)?;
            self.files.push(to);
        }
        std::fs::remove_dir(&self.staging)?;
        Ok(())
    }

    /// The state files the restore is about to write (none of them existed: the state
    /// of a vault folder that held no vault is stale).
    fn state_files(&mut self, state: &StateDir) {
        self.files.push(state.path().join("state.json"));
        self.files.push(state.base_db());
        self.files.push(
            state
                .path()
                .join("journal")
                .join(super::state::journal_file_name(1)),
        );
    }

    fn done(mut self) {
        self.armed = false;
    }
}

impl Drop for RestoreUndo {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.staging);
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
        if self.made_dest {
            let _ = std::fs::remove_dir(&self.dest); // only if empty
        }
    }
}

/// Undoes a bad push: makes the committed database number `seq` of the local journal
/// (see [`SyncState::journal`]) the vault's content again, locally and on the remote.
///
/// The journal copy is verified and its rows are written over the local vault's in one
/// transaction (rows the bad push added are kept: rows are never removed), then
/// committed like any local change, so `IfMatch` and the lease lock protect it and a
/// device that committed meanwhile is merged with, not overwritten. Other devices take
/// the restored values as a remote change on their next sync. Refused when the local
/// vault has changes not yet synced: sync first, so nothing local is discarded.
pub async fn restore_journal(
    vault: &mut Vault,
    remote: &Remote,
    state: &StateDir,
    seq: u64,
    opts: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    let st = state.load()?;
    let entry = st
        .journal
        .iter()
        .find(|e| e.seq == seq)
        .cloned()
        .ok_or_else(|| {
            SyncError::Storage(StorageError::InvalidInput {
                message: format!("no journal entry {seq}"),
            })
        })?;
    if st.local_db_sha256.as_deref() != Some(sha256_file(&vault.db_path())?.as_str()) {
        return Err(SyncError::Storage(StorageError::InvalidInput {
            message: "the vault has local changes that are not synced yet: sync first".into(),
        }));
    }
    let restored = syncfabric_vault::read_snapshot_file(state.journal_file(&entry), vault.key())?;
    vault.apply(&restored)?;
    sync_vault(vault, remote, state, opts).await
}
