//! One sync of one vault: the protocol of `ARCHITECTURE.md`, step by step.

use super::limits::DownloadBound;
use super::marker::Versioning;
use super::state::{StateDir, SyncState, TempFile};
use super::SyncError;
use crate::remote::Remote;
use futures_util::StreamExt;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use syncfabric_core::lock::{LeaseGuard, LeaseLock, LeaseOptions};
use syncfabric_core::progress::{Direction, Meter, ProgressHook, Transfer};
use syncfabric_core::server_lock::ServerLockGuard;
use syncfabric_core::LockOwner;
use syncfabric_core::{Body, Error as StorageError, Precondition, RemotePath, Storage};
use syncfabric_merge::{merge_sources, AttachmentFiles, MergeOptions, MergeOutcome};
use syncfabric_vault::{RowSource, Snapshot, SnapshotReader, Vault};
use tokio::io::AsyncWriteExt;

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

fn now_unix() -> u64 {
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

/// A meter for one transfer of this sync (inert without a hook).
fn meter(
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
async fn upload(
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
const DOWNLOAD_TRIES: u32 = 5;

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
async fn download(
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

async fn download_tries(
    storage: &dyn Storage,
    path: &RemotePath,
    dest: &TempFile,
    bound: &DownloadBound,
    meter: &Meter,
) -> Result<Option<syncfabric_core::Version>, SyncError> {
    let mut attempt = 1;
    loop {
        match download_once(storage, path, dest, bound, meter).await {
            Err(SyncError::Storage(e)) if e.is_retryable() && attempt < DOWNLOAD_TRIES => {
                tracing::debug!(%path, error = %e, attempt, "download broke off; starting again");
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
                attempt += 1;
            }
            r => return r,
        }
    }
}

async fn download_once(
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

fn attachment_file_name(uuid: &str) -> String {
    format!("{uuid}.enpassattach")
}

/// What the commit step needs from the merge step.
struct Plan {
    /// Attachment files the result references (live) and tombstoned ones.
    live: BTreeSet<String>,
    dead: BTreeSet<String>,
    /// The local vault must be committed to the remote.
    needs_upload: bool,
    /// Remote changes were applied locally.
    applied: bool,
    /// There is no remote database yet.
    remote_missing: bool,
    /// The remote database was downloaded to the temp file.
    downloaded: bool,
    /// The remote version the commit is conditional on.
    remote_version: Option<syncfabric_core::Version>,
}

/// The push-only case: nobody committed since our last sync and the local vault
/// changed. `merge(base, local, base)` is the local vault itself, so the base is not
/// read as a snapshot and nothing is merged; the mass-delete guard runs on the live
/// item uuids of the base file and of the vault (one indexed query each).
/// `None` when this is not that case (or the base cannot be read this way, e.g.
/// after a local re-key): the full path handles it.
fn fast_push(
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
struct PullCtx<'a> {
    dir: &'a RemotePath,
    db_path: &'a RemotePath,
    json_path: &'a RemotePath,
    download_tmp: &'a TempFile,
    /// The size the `stat` of the database announced.
    remote_size: u64,
    remote_version: Option<syncfabric_core::Version>,
    /// How commits are told apart (the storage's versions or the commit marker).
    versioning: &'a Versioning,
}

/// The pull-only case: the local vault is unchanged since our last sync and the remote
/// has a newer commit. Every commit descends from the one we last saw, so
/// `merge(base, base, remote)` is the remote itself: after the usual verification the
/// downloaded database replaces the local one (atomically), with no snapshot and no
/// merge. The mass-delete guard compares the live item uuids of base and remote.
#[allow(clippy::too_many_arguments)]
async fn fast_pull(
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

/// Downloads the attachment files of `wanted` that the local vault folder lacks (each
/// to a temp file, then renamed into place); returns how many. Each download is
/// bounded by the size the folder's listing announced (one `list`, a `stat` for a
/// file the listing lacks).
async fn fetch_missing_attachments(
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
fn checked_attachment_file_name(uuid: &str) -> Result<String, SyncError> {
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
async fn listed_sizes(
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
async fn announced_size(
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

/// Refuses a change that takes more than the allowed share of `was` out of the live set.
fn guard_sets<T: Ord>(
    opts: &SyncOptions,
    was: &BTreeSet<T>,
    now: &BTreeSet<T>,
) -> Result<(), SyncError> {
    guard_counts(opts, was.difference(now).count(), was.len())
}

/// Refuses a change that takes `gone` of `live` live items out of the live set, when
/// that is more than the allowed share.
fn guard_counts(opts: &SyncOptions, gone: usize, live: usize) -> Result<(), SyncError> {
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

/// Where the remote's files are and where the database is downloaded to.
struct RemotePaths<'a> {
    json: &'a RemotePath,
    db: &'a RemotePath,
    download_tmp: &'a TempFile,
    /// The database's size as its `stat` announced it: the download's bound.
    size: u64,
}

/// The remote as the full merge reads it: `vault.json` checked, the database
/// downloaded, verified and opened as a row source. Returns the version the storage
/// reported with the download, if any.
async fn fetch_remote(
    vault: &Vault,
    storage: &dyn Storage,
    state: &StateDir,
    opts: &SyncOptions,
    paths: &RemotePaths<'_>,
) -> Result<(SnapshotReader, Option<syncfabric_core::Version>), SyncError> {
    let progress = opts.progress.as_ref();
    let scratch = state.temp_path("json");
    let meta = check_remote_meta(vault, storage, paths.json, &scratch, progress).await?;
    let m = meter(progress, Direction::Download, paths.db, "database");
    let bound = DownloadBound::announced(paths.size);
    let v = download(storage, paths.db, paths.download_tmp, &bound, &m).await?;
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
fn remote_read_error(e: syncfabric_vault::Error, file: &Path, meta: RemoteMeta) -> SyncError {
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
fn not_an_encrypted_database(file: &Path) -> Option<&'static str> {
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
async fn check_remote_meta(
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
        .and_then(|m| m.check_supported().map(|()| m))
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
const PASSWORD_CHANGED: &str = "last_password_changed_time";

/// What the remote `vault.json` told about the remote database.
#[derive(Clone, Copy, Debug, Default)]
struct RemoteMeta {
    /// It records another password change than the local vault.json: a remote
    /// database under another key is expected then, and corrupt otherwise.
    password_changed: bool,
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
fn lost_lock_is_a_race(e: StorageError, path: &RemotePath) -> StorageError {
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
    let (dir, db_path, json_path) = remote_layout(vault_uuid)?;
    let mut undo = RestoreUndo::start(dest)?;
    let staging = undo.staging.clone();
    // Stat before the download: see fast_pull on why never after.
    let versioning = Versioning::of(storage, &dir)?;
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
    let json_bound = DownloadBound::vault_json();
    fetch(
        json_path,
        "vault.json".into(),
        json_bound,
        "vault.json".into(),
    )
    .await?;
    let db_bound = DownloadBound::announced(stated.size);
    let with_download = fetch(
        db_path.clone(),
        "vault.enpassdb".into(),
        db_bound,
        "database".into(),
    )
    .await?;
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
        vault_uuid: vault_uuid.to_string(),
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
                message: format!("no journal entry {seq} (see `syncfabric status`)"),
            })
        })?;
    if st.local_db_sha256.as_deref() != Some(sha256_file(&vault.db_path())?.as_str()) {
        return Err(SyncError::Storage(StorageError::InvalidInput {
            message:
                "the vault has local changes that are not synced yet: run `syncfabric sync` first"
                    .into(),
        }));
    }
    let restored = syncfabric_vault::read_snapshot_file(state.journal_file(&entry), vault.key())?;
    vault.apply(&restored)?;
    sync_vault(vault, remote, state, opts).await
}
