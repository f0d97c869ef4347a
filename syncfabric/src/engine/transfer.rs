//! Moving bytes: uploads and bounded, verified downloads of the database, vault.json
//! and attachment files, each with its progress meter.

use super::layout::RemoteLayout;
use super::limits::DownloadBound;
use super::state::{StateDir, TempFile};
use super::SyncError;
use futures_util::StreamExt;
use std::collections::BTreeSet;
use std::path::Path;
use syncfabric_core::progress::{Direction, Meter, ProgressHook, Transfer};
use syncfabric_core::{Body, Error as StorageError, Precondition, RemotePath, Storage};
use syncfabric_vault::{SnapshotReader, Vault};
use tokio::io::AsyncWriteExt;

use super::sync::*;

/// A meter for one transfer of this sync (inert without a hook).
pub(super) fn meter(
    progress: Option<&ProgressHook>,
    direction: Direction,
    path: &RemotePath,
    label: impl Into<String>,
) -> Meter {
    match progress {
        Some(hook) => hook.meter(Transfer {
            direction,
            path: path.clone(),
            label: label.into(),
        }),
        None => Meter::disabled(),
    }
}

/// Writes `body` to `path`, reporting its progress on `meter` (the bytes the provider
/// reads from the body; `Finished` when the write succeeded, `Failed` otherwise).
pub(super) async fn upload(
    storage: &dyn Storage,
    path: &RemotePath,
    body: Body,
    pre: Precondition,
    meter: Meter,
) -> Result<syncfabric_core::Entry, StorageError> {
    meter.start(Some(body.len()));
    let written = meter.scope(storage.write(path, body, pre)).await;
    match &written {
        Ok(_) => meter.finish(),
        Err(_) => meter.fail(),
    }
    written
}

/// How many times a download that broke off is started again.
pub(super) const DOWNLOAD_TRIES: u32 = 5;

/// Streams `path` of `storage` into the temp file `dest` (emptied first); returns the
/// version the storage reported with the read, if any. A download that breaks off
/// half-way (a reset, a body cut short: errors the storage's retry layer cannot replay,
/// since the body was already handed over) starts again from the beginning, up to
/// [`DOWNLOAD_TRIES`] times in all. `meter` sees each attempt (a restart counts from 0
/// again), then `Finished` or `Failed`.
///
/// Every download runs under `bound` (see [`super::limits`]): it is stopped as soon as
/// it passes `bound.max_bytes` or the size the read announced, and when all its
/// attempts together pass `bound.deadline`: [`SyncError::DownloadLimit`], not retried.
/// On any error the caller drops `dest`, which deletes what was written.
pub(super) async fn download(
    storage: &dyn Storage,
    path: &RemotePath,
    dest: &TempFile,
    bound: &DownloadBound,
    meter: &Meter,
) -> Result<Option<syncfabric_core::Version>, SyncError> {
    let tries = download_tries(storage, path, dest, bound, meter);
    let result = match tokio::time::timeout(bound.deadline, tries).await {
        Ok(r) => r,
        Err(_) => Err(SyncError::DownloadLimit {
            path: path.to_string(),
            reason: bound.too_slow(),
        }),
    };
    match &result {
        Ok(_) => meter.finish(),
        Err(_) => meter.fail(),
    }
    result
}

pub(super) async fn download_tries(
    storage: &dyn Storage,
    path: &RemotePath,
    dest: &TempFile,
    bound: &DownloadBound,
    meter: &Meter,
) -> Result<Option<syncfabric_core::Version>, SyncError> {
    let mut waits = download_retry().delays();
    let mut attempt = 1;
    loop {
        match download_once(storage, path, dest, bound, meter).await {
            Err(SyncError::Storage(e)) if e.is_retryable() => {
                let Some(wait) = waits.next() else {
                    return Err(SyncError::Storage(e));
                };
                tracing::debug!(%path, error = %e, attempt, "download broke off; starting again");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            r => return r,
        }
    }
}

/// How a broken-off download starts again: [`DOWNLOAD_TRIES`] attempts in all, the
/// waits growing from 0.4 s (core's backoff, so it is written once).
fn download_retry() -> syncfabric_core::retry::RetryPolicy {
    syncfabric_core::retry::RetryPolicy {
        min_delay: std::time::Duration::from_millis(400),
        max_attempts: DOWNLOAD_TRIES as usize,
        ..Default::default()
    }
}

pub(super) async fn download_once(
    storage: &dyn Storage,
    path: &RemotePath,
    dest: &TempFile,
    bound: &DownloadBound,
    meter: &Meter,
) -> Result<Option<syncfabric_core::Version>, SyncError> {
    use std::io::Seek;
    let mut d = storage.read(path).await?;
    let too_large = || SyncError::DownloadLimit {
        path: path.to_string(),
        reason: bound.too_large(),
    };
    if d.size.is_some_and(|size| size > bound.max_bytes) {
        return Err(too_large());
    }
    // Each attempt starts from an empty file, written from offset 0.
    let mut std_file = dest.file().try_clone()?;
    std_file.set_len(0)?;
    std_file.seek(std::io::SeekFrom::Start(0))?;
    let mut f = tokio::fs::File::from_std(std_file);
    meter.start(d.size);
    let mut got = 0u64;
    let streamed: Result<(), SyncError> = async {
        while let Some(chunk) = d.stream.next().await {
            let chunk = chunk?;
            got = got.saturating_add(chunk.len() as u64);
            if got > bound.max_bytes {
                return Err(too_large());
            }
            if let Some(size) = d.size.filter(|size| got > *size) {
                return Err(SyncError::DownloadLimit {
                    path: path.to_string(),
                    reason: format!("it sent more than the {size} bytes it announced"),
                });
            }
            f.write_all(&chunk).await?;
            meter.advance(chunk.len() as u64);
        }
        Ok(())
    }
    .await;
    // Wait for a write still in flight before the file is emptied for another attempt
    // or deleted.
    let flushed = f.flush().await;
    streamed?;
    flushed?;
    if let Some(size) = d.size {
        if size != got {
            // A body cut short is the network's doing, not the file's.
            return Err(SyncError::Storage(StorageError::transient(format!(
                "{path}: announced {size} bytes, got {got}"
            ))));
        }
    }
    f.sync_all().await?;
    Ok(d.version)
}

pub(super) fn attachment_file_name(uuid: &str) -> String {
    format!("{uuid}.enpassattach")
}

/// Downloads the attachment files of `wanted` that the local vault folder lacks (each
/// to a temp file, then renamed into place); returns how many. Each download is
/// bounded by the size the folder's listing announced (one `list`, a `stat` for a
/// file the listing lacks).
pub(super) async fn fetch_missing_attachments(
    vault: &Vault,
    storage: &dyn Storage,
    state: &StateDir,
    dir: &RemotePath,
    wanted: &BTreeSet<String>,
    progress: Option<&ProgressHook>,
) -> Result<usize, SyncError> {
    let mut missing = Vec::new();
    for a in wanted {
        let name = checked_attachment_file_name(a)?;
        if !vault.dir().join(&name).exists() {
            missing.push(name);
        }
    }
    if missing.is_empty() {
        return Ok(0);
    }
    let sizes = listed_sizes(storage, dir).await?;
    for (i, name) in missing.iter().enumerate() {
        let remote = dir.join(name)?;
        let size = announced_size(storage, &sizes, &remote).await?;
        let tmp = state.temp_file("attachment")?;
        let label = format!("attachment {} of {}", i + 1, missing.len());
        let m = meter(progress, Direction::Download, &remote, label);
        download(storage, &remote, &tmp, &DownloadBound::announced(size), &m).await?;
        tmp.persist(&vault.dir().join(name))?;
    }
    Ok(missing.len())
}

/// An attachment's file name, `<uuid>.enpassattach`, for a uuid read from a database
/// (maybe a remote one): the uuid must be 1 to 64 ASCII letters, digits or `-`, so that
/// the name is one plain path segment.
pub(super) fn checked_attachment_file_name(uuid: &str) -> Result<String, SyncError> {
    let ok = (1..=64).contains(&uuid.len())
        && uuid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !ok {
        return Err(SyncError::RemoteCorrupt(format!(
            "an attachment uuid is not 1 to 64 letters, digits or '-' ({:?})",
            uuid.chars().take(80).collect::<String>()
        )));
    }
    Ok(attachment_file_name(uuid))
}

/// File name → size, from one listing of `dir` (empty if the folder is missing).
pub(super) async fn listed_sizes(
    storage: &dyn Storage,
    dir: &RemotePath,
) -> Result<std::collections::BTreeMap<String, u64>, SyncError> {
    match storage.list(dir).await {
        Ok(entries) => Ok(entries
            .into_iter()
            .filter_map(|e| Some((e.path.file_name()?.to_string(), e.size)))
            .collect()),
        Err(StorageError::NotFound { .. }) => Ok(Default::default()),
        Err(e) => Err(e.into()),
    }
}

/// The size `sizes` (a listing) gives `path`, else the size its `stat` gives;
/// `NotFound` if it is not there.
pub(super) async fn announced_size(
    storage: &dyn Storage,
    sizes: &std::collections::BTreeMap<String, u64>,
    path: &RemotePath,
) -> Result<u64, SyncError> {
    if let Some(size) = path.file_name().and_then(|n| sizes.get(n)) {
        return Ok(*size);
    }
    match storage.stat(path).await? {
        Some(e) => Ok(e.size),
        None => Err(SyncError::Storage(StorageError::NotFound {
            path: path.to_string(),
        })),
    }
}

/// Where the remote's files are and where the database is downloaded to.
pub(super) struct RemotePaths<'a> {
    pub(super) layout: &'a RemoteLayout,
    pub(super) download_tmp: &'a TempFile,
    /// The database's size as its `stat` announced it: the download's bound.
    pub(super) size: u64,
}

/// Downloads the remote database into `paths.download_tmp` and checks the remote's
/// vault.json against the local vault ([`check_remote_meta`]): in syncfabric's layout
/// two files; in the Enpass layout one container, downloaded whole to a temp file, its
/// header read defensively and the database part copied out. Returns what the meta
/// said and the version the storage reported with the download, if any.
pub(super) async fn download_database(
    vault: &Vault,
    storage: &dyn Storage,
    state: &StateDir,
    progress: Option<&ProgressHook>,
    paths: &RemotePaths<'_>,
) -> Result<(RemoteMeta, Option<syncfabric_core::Version>), SyncError> {
    let db = &paths.layout.db;
    let m = meter(progress, Direction::Download, db, "database");
    let bound = DownloadBound::announced(paths.size);
    let Some(json) = &paths.layout.json else {
        let container = state.temp_file("container")?;
        let v = download(storage, db, &container, &bound, &m).await?;
        let mut src = std::fs::File::open(container.path())?;
        let meta = syncfabric_vault::container::unpack(&mut src, paths.download_tmp.path())
            .map_err(|e| SyncError::RemoteCorrupt(format!("remote {db}: {e}")))?;
        return Ok((judge_remote_meta(vault, meta)?, v));
    };
    let scratch = state.temp_path("json");
    let meta = check_remote_meta(vault, storage, json, &scratch, progress).await?;
    let v = download(storage, db, paths.download_tmp, &bound, &m).await?;
    Ok((meta, v))
}

/// The remote as the full merge reads it: vault.json checked, the database
/// downloaded, verified and opened as a row source. Returns the version the storage
/// reported with the download, if any.
pub(super) async fn fetch_remote(
    vault: &Vault,
    storage: &dyn Storage,
    state: &StateDir,
    opts: &SyncOptions,
    paths: &RemotePaths<'_>,
) -> Result<(SnapshotReader, Option<syncfabric_core::Version>), SyncError> {
    let progress = opts.progress.as_ref();
    let (meta, v) = download_database(vault, storage, state, progress, paths).await?;
    let t = std::time::Instant::now();
    let file = paths.download_tmp.path();
    let snap = syncfabric_vault::open_snapshot_file(file, vault.key())
        .map_err(|e| remote_read_error(e, file, meta))?;
    tracing::debug!(ms = t.elapsed().as_millis() as u64, "verify + open remote");
    Ok((snap, v))
}

/// Maps a failure to read the downloaded remote database `file` to what the person
/// must know. A file under another key is [`SyncError::KeyChanged`] only when it looks
/// like an Enpass database of another salt; anything else that does not open is
/// corrupt, with the reason.
pub(super) fn remote_read_error(
    e: syncfabric_vault::Error,
    file: &Path,
    meta: RemoteMeta,
) -> SyncError {
    use syncfabric_vault::Error as V;
    let corrupt = |why: &str| SyncError::RemoteCorrupt(format!("remote vault.enpassdb: {why}"));
    match e {
        // Same salt as our key, yet the key does not open it: a damaged first page.
        V::WrongKey => corrupt("it has this vault's salt but does not decrypt with its key"),
        V::KeyChanged => match not_an_encrypted_database(file) {
            Some(why) => corrupt(why),
            None if meta.password_changed => SyncError::KeyChanged,
            None => corrupt(
                "it does not open with this vault's key, and the remote vault.json records no change of master password",
            ),
        },
        V::Corrupt(m) => SyncError::RemoteCorrupt(m),
        other => SyncError::Vault(other),
    }
}

/// Why `file` cannot be an SQLCipher database at all (a plain SQLite file, too short,
/// not whole pages), or `None` when it could be one under some other key.
pub(super) fn not_an_encrypted_database(file: &Path) -> Option<&'static str> {
    use std::io::Read;
    const PAGE: u64 = 1024;
    let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let mut head = [0u8; 16];
    let read = std::fs::File::open(file).and_then(|mut f| f.read_exact(&mut head));
    if read.is_err() || len < PAGE {
        Some("it is shorter than one database page")
    } else if &head == b"SQLite format 3\0" {
        Some("it is a plain, unencrypted SQLite database")
    } else if !len.is_multiple_of(PAGE) {
        Some("its size is not a whole number of database pages")
    } else {
        None
    }
}

/// Checks the remote `vault.json` (if present) against the local vault: same uuid,
/// same key derivation, a supported format with `kdf_iter` within bounds. A remote
/// that lies is refused before anything is merged. A missing `vault.json` tells
/// nothing (`password_changed` is then assumed).
pub(super) async fn check_remote_meta(
    vault: &Vault,
    storage: &dyn Storage,
    json_path: &RemotePath,
    scratch: &Path,
    progress: Option<&ProgressHook>,
) -> Result<RemoteMeta, SyncError> {
    let m = meter(progress, Direction::Download, json_path, "vault.json");
    let tmp = TempFile::create_at(scratch.to_path_buf())?;
    match download(storage, json_path, &tmp, &DownloadBound::vault_json(), &m).await {
        Ok(_) => {}
        Err(SyncError::Storage(StorageError::NotFound { .. })) => {
            return Ok(RemoteMeta {
                password_changed: true,
            })
        }
        Err(e) => return Err(e),
    }
    let bytes = tokio::fs::read(tmp.path()).await?;
    drop(tmp);
    let remote = syncfabric_vault::meta::VaultMeta::parse(&bytes)
        .map_err(|e| SyncError::RemoteCorrupt(format!("remote vault.json: {e}")))?;
    judge_remote_meta(vault, remote)
}

/// Checks a remote vault.json against the local vault's (see [`check_remote_meta`]).
pub(super) fn judge_remote_meta(
    vault: &Vault,
    remote: syncfabric_vault::meta::VaultMeta,
) -> Result<RemoteMeta, SyncError> {
    remote
        .check_supported()
        .map_err(|e| SyncError::RemoteCorrupt(format!("remote vault.json: {e}")))?;
    let local = vault.meta();
    if remote.vault_uuid() != local.vault_uuid() {
        return Err(SyncError::OtherVault(format!(
            "remote vault.json names vault {:?}, this vault is {:?}",
            remote.vault_uuid().unwrap_or("?"),
            local.vault_uuid().unwrap_or("?")
        )));
    }
    let same_kdf = remote.str("kdf_algo") == local.str("kdf_algo")
        && remote.int("kdf_iter") == local.int("kdf_iter")
        && remote.have_keyfile() == local.have_keyfile();
    if !same_kdf {
        return Err(SyncError::KeyChanged);
    }
    Ok(RemoteMeta {
        password_changed: remote.int(PASSWORD_CHANGED) != local.int(PASSWORD_CHANGED),
    })
}

/// The `vault.json` key Enpass sets when the master password or keyfile changes.
pub(super) const PASSWORD_CHANGED: &str = "last_password_changed_time";

/// What the remote `vault.json` told about the remote database.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct RemoteMeta {
    /// It records another password change than the local vault.json: a remote
    /// database under another key is expected then, and corrupt otherwise.
    pub(super) password_changed: bool,
}
