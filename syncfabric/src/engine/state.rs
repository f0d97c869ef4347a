//! The local sync state of one vault against one remote.
//!
//! It lives in a folder of its own (by default `<vault folder>/.syncfabric/<remote>/`):
//!
//! * `state.json` — the remote version last committed or seen, the content hash of the
//!   local database right after that sync (to tell "no local change" without opening
//!   it), and the journal index. Written atomically (temp file + rename).
//! * `base.enpassdb` — the database as last committed to the remote: the base of the
//!   next three-way merge. Encrypted with the vault key exactly like the vault itself.
//! * `journal/<seq>.enpassdb` — the last few committed remote databases, for `restore`.
//!
//! Everything here is private to the user: the folders are made 0700 and every file
//! 0600 whatever the umask (a base or journal copy is the whole vault, encrypted, and a
//! download may hold whatever a hostile remote sent). `state.json` is input like any
//! other: [`SyncState::from_json`] checks it, and one that cannot be read or checked is
//! moved aside and rebuilt (the state is derivable: an empty one only means the next
//! sync merges without a base). No name read from it ever becomes a path: journal
//! files are named from their sequence number.
//!
//! Temp files ([`TempFile`]) are created new (`O_EXCL`), 0600, and are removed by their
//! guard on every failure path; a crashed run's leftovers are swept by
//! [`StateDir::open`] (see there for how a live one is told from a dead one).

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// How many committed remote databases the journal keeps by default (see
/// [`StateDir::with_journal_len`]).
pub const JOURNAL_LEN: usize = 5;

/// The largest `state.json` read (64 MiB: a journal of 100,000 entries, as the
/// never-lose run keeps, is about 15 MB). A larger file is invalid and rebuilt.
pub const STATE_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// The longest remote version string kept (ETags, content hashes and Graph eTags are
/// well under 200 bytes). A remote that reports a longer one is refused.
pub const MAX_VERSION_LEN: usize = 1024;

/// The longest vault uuid kept in `state.json` (an Enpass uuid is 36 bytes).
pub const MAX_UUID_LEN: usize = 256;

/// A temp file in a state folder that nobody holds and that was last modified at
/// least this long ago belongs to a run that crashed: [`StateDir::open`] deletes it.
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(60);

/// Prefix of every temp file the engine makes (in a state folder, and beside a file
/// [`write_atomic`] replaces).
const TEMP_PREFIX: &str = ".tmp-";

/// One committed remote database kept in the journal.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct JournalEntry {
    /// Sequence number (grows by one per commit seen).
    pub seq: u64,
    /// The remote version of that database.
    pub remote_version: String,
    /// Unix seconds when it was recorded.
    pub recorded_at: u64,
    /// File name inside `journal/`: always [`journal_file_name`]`(seq)`. Written for
    /// older versions that read it; never used as a path (a state whose `file` is
    /// anything else is invalid, see [`SyncState::from_json`]).
    pub file: String,
}

/// The name of journal entry `seq`'s file inside `journal/`: derived from the number
/// only, so that nothing read from `state.json` can name a path.
pub fn journal_file_name(seq: u64) -> String {
    format!("{seq:08}.enpassdb")
}

/// What is remembered between two syncs.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SyncState {
    /// The vault's uuid (a state folder never serves another vault).
    pub vault_uuid: String,
    /// The remote database version at the end of the last successful sync.
    pub remote_version: Option<String>,
    /// SHA-256 (hex) of the local database file at the end of the last successful sync.
    pub local_db_sha256: Option<String>,
    /// Unix seconds of the last successful sync.
    pub last_sync: Option<u64>,
    /// Committed remote databases kept locally, newest last.
    #[serde(default)]
    pub journal: Vec<JournalEntry>,
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

impl SyncState {
    /// Parses and checks the content of a `state.json`: at most [`STATE_MAX_BYTES`],
    /// `vault_uuid` at most [`MAX_UUID_LEN`] bytes, versions at most
    /// [`MAX_VERSION_LEN`], the local hash 64 hex digits, journal sequence numbers
    /// strictly increasing from at least 1 and below `u64::MAX` (so the next one exists),
    /// and each journal `file` exactly [`journal_file_name`] of its `seq`.
    ///
    /// Errors: `InvalidData`, saying what is wrong (never a panic, whatever `bytes` is).
    pub fn from_json(bytes: &[u8]) -> std::io::Result<SyncState> {
        if bytes.len() as u64 > STATE_MAX_BYTES {
            return Err(invalid(format!(
                "state.json is larger than {STATE_MAX_BYTES} bytes"
            )));
        }
        let st: SyncState =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("state.json: {e}")))?;
        st.validate()?;
        Ok(st)
    }

    /// The checks of [`SyncState::from_json`] on a state in memory.
    pub fn validate(&self) -> std::io::Result<()> {
        if self.vault_uuid.len() > MAX_UUID_LEN {
            return Err(invalid(format!(
                "state.json: vault_uuid is longer than {MAX_UUID_LEN} bytes"
            )));
        }
        check_version(self.remote_version.as_deref().unwrap_or(""))?;
        if let Some(h) = &self.local_db_sha256 {
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(
                    "state.json: local_db_sha256 is not 64 hex digits".into(),
                ));
            }
        }
        let mut prev = 0u64;
        for e in &self.journal {
            if e.seq == u64::MAX {
                return Err(invalid(format!(
                    "state.json: journal seq {} leaves no next number (the largest allowed \
                     is 2^64-2)",
                    e.seq
                )));
            }
            if e.seq <= prev {
                return Err(invalid(format!(
                    "state.json: journal seq {} does not follow {prev} (sequence numbers \
                     grow strictly, from 1)",
                    e.seq
                )));
            }
            prev = e.seq;
            if e.file != journal_file_name(e.seq) {
                return Err(invalid(format!(
                    "state.json: journal entry {} names file {:?}, not {:?}",
                    e.seq,
                    e.file.chars().take(64).collect::<String>(),
                    journal_file_name(e.seq)
                )));
            }
            check_version(&e.remote_version)?;
        }
        Ok(())
    }
}

fn check_version(v: &str) -> std::io::Result<()> {
    if v.len() > MAX_VERSION_LEN {
        return Err(invalid(format!(
            "a remote version is longer than {MAX_VERSION_LEN} bytes"
        )));
    }
    Ok(())
}

/// The folder holding a [`SyncState`] and its files.
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
    journal_len: usize,
}

impl StateDir {
    /// Uses (and creates) `dir`, and its `journal/`, both 0700 (a parent folder named
    /// `.syncfabric`, the vault folder's, too). A state folder or journal that is a
    /// symbolic link is refused.
    ///
    /// Sweeps the temp files a crashed run left: `.tmp-*` files that nobody holds
    /// locked and that were last modified [`STALE_TEMP_AGE`] ago or earlier. Another
    /// process may be syncing the same vault with this folder right now, so a temp file
    /// is not deleted just because it exists: each [`TempFile`] holds an advisory lock
    /// (`flock`) on itself for its whole life and the kernel drops it when its process
    /// dies, so a free lock means a dead writer (pids are not used: they are reused).
    /// The age check covers the instant between a temp file's creation and its lock.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<StateDir> {
        let dir = dir.into();
        make_private_dir(&dir)?;
        if let Some(parent) = dir.parent() {
            if parent.file_name().is_some_and(|n| n == ".syncfabric") {
                make_private_dir(parent)?;
            }
        }
        make_private_dir(&dir.join("journal"))?;
        match sweep_stale_temps(&dir) {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(dir = %dir.display(), removed = n, "removed temp files of a crashed run")
            }
            Err(e) => tracing::warn!(dir = %dir.display(), "could not sweep old temp files: {e}"),
        }
        remove_links(&dir)?;
        Ok(StateDir {
            dir,
            journal_len: JOURNAL_LEN,
        })
    }

    /// Keeps the last `len` committed databases instead of [`JOURNAL_LEN`] (at least
    /// one: the newest is always kept). A longer journal lets `restore` go further
    /// back; the never-lose-data run keeps every commit so it can check them all.
    pub fn with_journal_len(mut self, len: usize) -> StateDir {
        self.journal_len = len.max(1);
        self
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Where the base database is kept.
    pub fn base_db(&self) -> PathBuf {
        self.dir.join("base.enpassdb")
    }

    /// A fresh scratch file path inside the state folder (same filesystem, so renames
    /// are atomic): `.tmp-<what>-<pid>-<n>`, unique within this process. Prefer
    /// [`StateDir::temp_file`], which creates it and removes it again.
    pub fn temp_path(&self, what: &str) -> PathBuf {
        self.dir.join(unique_temp_name(what))
    }

    /// A new, empty temp file in the state folder (see [`TempFile`]).
    pub fn temp_file(&self, what: &str) -> std::io::Result<TempFile> {
        TempFile::create_at(self.temp_path(what))
    }

    /// The journal file of one entry: named from its `seq` only (see
    /// [`journal_file_name`]), never from its `file`.
    pub fn journal_file(&self, e: &JournalEntry) -> PathBuf {
        self.journal_path(e.seq)
    }

    fn journal_path(&self, seq: u64) -> PathBuf {
        self.dir.join("journal").join(journal_file_name(seq))
    }

    /// Reads `state.json`; a missing file is the empty state. A file that cannot be
    /// read (a symbolic link included) or fails [`SyncState::from_json`] is moved aside
    /// as `state.json.corrupt-<unix time>` with a warning, and the empty state is
    /// returned: the next sync rebuilds it, merging without a base.
    pub fn load(&self) -> std::io::Result<SyncState> {
        let path = self.dir.join("state.json");
        let read = read_nofollow(&path, STATE_MAX_BYTES);
        let bad = match read {
            Ok(bytes) => match SyncState::from_json(&bytes) {
                Ok(st) => return Ok(st),
                Err(e) => e,
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SyncState::default()),
            Err(e) => e,
        };
        let aside = self
            .dir
            .join(format!("state.json.corrupt-{}", super::sync::now_unix()));
        std::fs::rename(&path, &aside).map_err(|e| {
            invalid(format!(
                "{} is unusable ({bad}) and could not be moved aside: {e}",
                path.display()
            ))
        })?;
        tracing::warn!(
            "{} was unusable ({bad}); moved it to {} and starting from an empty sync state \
             (the next sync merges without a base)",
            path.display(),
            aside.display()
        );
        Ok(SyncState::default())
    }

    /// Writes `state.json` atomically (0600). A state that [`SyncState::validate`]
    /// refuses is not written (`load` would only discard it).
    pub fn save(&self, state: &SyncState) -> std::io::Result<()> {
        state.validate()?;
        let bytes = serde_json::to_vec_pretty(state)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        write_atomic(&self.dir.join("state.json"), &bytes)
    }

    /// Installs `committed` (a database file just committed to the remote) as the new
    /// base and as the newest journal entry, dropping the oldest beyond the journal's
    /// length ([`JOURNAL_LEN`] unless [`StateDir::with_journal_len`] set another).
    ///
    /// Errors: `InvalidData` when the journal's sequence numbers are used up or
    /// `remote_version` is longer than [`MAX_VERSION_LEN`]; I/O errors.
    pub fn record_commit(
        &self,
        state: &mut SyncState,
        committed: impl AsRef<Path>,
        remote_version: &str,
        now: u64,
    ) -> std::io::Result<()> {
        let committed = committed.as_ref();
        check_version(remote_version)?;
        let seq = match state.journal.last() {
            None => 1,
            Some(e) => e
                .seq
                .checked_add(1)
                .filter(|s| *s < u64::MAX)
                .ok_or_else(|| invalid("the journal's sequence numbers are used up".into()))?,
        };
        let entry = JournalEntry {
            seq,
            remote_version: remote_version.to_string(),
            recorded_at: now,
            file: journal_file_name(seq),
        };
        self.copy_in(committed, "journal")?
            .persist(&self.journal_path(seq))?;
        self.copy_in(committed, "base")?.persist(&self.base_db())?;
        state.journal.push(entry);
        let excess = state.journal.len().saturating_sub(self.journal_len);
        for old in state.journal.drain(..excess) {
            let _ = std::fs::remove_file(self.journal_path(old.seq));
        }
        sync_dir(&self.dir)
    }

    /// A private temp copy of `src` in the state folder, fsynced. (Not `fs::copy`,
    /// which would give the copy `src`'s permissions.)
    fn copy_in(&self, src: &Path, what: &str) -> std::io::Result<TempFile> {
        let tmp = self.temp_file(what)?;
        let mut from = File::open(src)?;
        std::io::copy(&mut from, &mut tmp.file())?;
        tmp.file().sync_all()?;
        Ok(tmp)
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// `.tmp-<what>-<pid>-<n>`: unique within this process; `create_new` makes it unique
/// on disk.
fn unique_temp_name(what: &str) -> String {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{TEMP_PREFIX}{what}-{}-{n}", std::process::id())
}

/// Creates `dir` (and missing parents) 0700, or makes an existing one 0700; refuses a
/// symbolic link or a file there.
fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{} is a symbolic link or a file; syncfabric keeps its state only in a real folder",
                dir.display()
            ),
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o777 != 0o700 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// Opens `path` (read, plus write if `write`) only if it is a regular file and not a
/// symbolic link: `lstat` first, then the opened handle must be that same file (device
/// and inode), so a link swapped in between is caught too. Portable, no `O_NOFOLLOW`.
pub(crate) fn open_nofollow(path: &Path, write: bool) -> std::io::Result<File> {
    let before = std::fs::symlink_metadata(path)?;
    if !before.is_file() {
        return Err(invalid(format!(
            "{} is not a regular file (a symbolic link?)",
            path.display()
        )));
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let after = f.metadata()?;
        if (after.dev(), after.ino()) != (before.dev(), before.ino()) {
            return Err(invalid(format!(
                "{} was replaced while it was opened",
                path.display()
            )));
        }
    }
    Ok(f)
}

/// Reads `path` whole (no symbolic link), refusing more than `max` bytes.
pub(crate) fn read_nofollow(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = open_nofollow(path, false)?;
    let mut bytes = Vec::new();
    f.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(invalid(format!(
            "{} is larger than {max} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}

/// A temp file the engine writes: created new (`O_EXCL`, so never through an existing
/// name or link), mode 0600, and locked (`flock`, advisory) for as long as this value
/// lives, which tells [`StateDir::open`]'s sweep that its writer is alive. Dropping it
/// deletes the file unless [`TempFile::persist`] renamed it into place: every failure
/// path removes it, with no cleanup call to forget.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    file: File,
    persisted: bool,
}

impl TempFile {
    /// Creates the empty file `path` (which must not exist).
    pub fn create_at(path: PathBuf) -> std::io::Result<TempFile> {
        let mut o = std::fs::OpenOptions::new();
        o.read(true).write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let file = o.open(&path)?;
        // A fresh file nobody else can know yet: the lock cannot block. File systems
        // without locks only lose the sweep's "writer alive" signal (the age remains).
        let _ = file.try_lock();
        Ok(TempFile {
            path,
            file,
            persisted: false,
        })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open handle (read and write).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Opens the file at [`TempFile::path`] again, after something else (e.g.
    /// `Vault::copy_database_to`) replaced it by a rename, and locks the new one.
    pub fn reopen(&mut self) -> std::io::Result<()> {
        let file = open_nofollow(&self.path, true)?;
        let _ = file.try_lock();
        self.file = file;
        Ok(())
    }

    /// fsyncs the file, renames it to `dest` (atomic on one file system; a symbolic
    /// link at `dest` is replaced, never followed) and fsyncs `dest`'s folder.
    pub fn persist(mut self, dest: &Path) -> std::io::Result<()> {
        self.file.sync_all()?;
        std::fs::rename(&self.path, dest)?;
        self.persisted = true;
        sync_dir(dest.parent().unwrap_or_else(|| Path::new(".")))
    }
}

impl AsRef<Path> for TempFile {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Removes symbolic links where the state keeps its databases (`base.enpassdb`,
/// `journal/*`): syncfabric never makes one, and SQLCipher would follow it. (A linked
/// `state.json` is set aside by [`StateDir::load`].)
fn remove_links(dir: &Path) -> std::io::Result<()> {
    let journal = std::fs::read_dir(dir.join("journal"))?
        .flatten()
        .map(|e| e.path());
    for p in std::iter::once(dir.join("base.enpassdb")).chain(journal) {
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
            tracing::warn!(
                "{} is a symbolic link; removed it (never followed)",
                p.display()
            );
            std::fs::remove_file(&p)?;
        }
    }
    Ok(())
}

/// Deletes the `.tmp-*` entries of `dir` left by dead writers (see [`StateDir::open`]).
fn sweep_stale_temps(dir: &Path) -> std::io::Result<usize> {
    let now = SystemTime::now();
    let mut removed = 0;
    for ent in std::fs::read_dir(dir)? {
        let Ok(ent) = ent else { continue };
        if !ent
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(TEMP_PREFIX))
        {
            continue;
        }
        let path = ent.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let old = meta
            .modified()
            .map(|m| now.duration_since(m).unwrap_or(Duration::ZERO) >= STALE_TEMP_AGE)
            .unwrap_or(false);
        if !old {
            continue;
        }
        if meta.is_file() {
            let Ok(f) = open_nofollow(&path, false) else {
                continue;
            };
            if f.try_lock().is_err() {
                continue; // a live writer holds it
            }
            // Deleted while we hold its lock: no writer can be using it.
        } else if !meta.file_type().is_symlink() {
            continue; // a folder: not ours
        }
        if std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

fn sync_dir(p: &Path) -> std::io::Result<()> {
    // Directories can be fsynced on Unix; elsewhere this is best effort.
    match File::open(p) {
        Ok(f) => f.sync_all().or(Ok(())),
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to `path` through a new 0600 temp file beside it, fsync and rename:
/// the file is 0600 whatever the umask (the CLI writes `config.toml` with it).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = TempFile::create_at(dir.join(unique_temp_name(name)))?;
    tmp.file().write_all(bytes)?;
    tmp.persist(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_journal_is_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let sd = StateDir::open(tmp.path().join("s")).unwrap();
        assert_eq!(sd.load().unwrap(), SyncState::default());
        let db = tmp.path().join("db");
        let mut st = SyncState {
            vault_uuid: "v".into(),
            ..Default::default()
        };
        for i in 0..(JOURNAL_LEN + 3) {
            std::fs::write(&db, format!("content {i}")).unwrap();
            sd.record_commit(&mut st, &db, &format!("v{i}"), i as u64)
                .unwrap();
        }
        assert_eq!(st.journal.len(), JOURNAL_LEN);
        assert_eq!(
            st.journal.last().unwrap().remote_version,
            format!("v{}", JOURNAL_LEN + 2)
        );
        let files = std::fs::read_dir(sd.path().join("journal"))
            .unwrap()
            .count();
        assert_eq!(files, JOURNAL_LEN);
        assert_eq!(
            std::fs::read_to_string(sd.base_db()).unwrap(),
            format!("content {}", JOURNAL_LEN + 2)
        );
        sd.save(&st).unwrap();
        assert_eq!(sd.load().unwrap(), st);
        assert_eq!(
            SyncState::from_json(&serde_json::to_vec(&st).unwrap()).unwrap(),
            st
        );
    }

    fn entry(seq: u64, file: &str) -> JournalEntry {
        JournalEntry {
            seq,
            remote_version: "v".into(),
            recorded_at: 0,
            file: file.into(),
        }
    }

    fn with_journal(journal: Vec<JournalEntry>) -> Vec<u8> {
        serde_json::to_vec(&SyncState {
            vault_uuid: "u".into(),
            journal,
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn from_json_refuses_what_could_hurt() {
        let ok = with_journal(vec![
            entry(1, "00000001.enpassdb"),
            entry(7, "00000007.enpassdb"),
        ]);
        assert!(SyncState::from_json(&ok).is_ok());
        for bad in [
            with_journal(vec![entry(1, "../../../../victim.txt")]),
            with_journal(vec![entry(1, "/etc/passwd")]),
            with_journal(vec![entry(u64::MAX, &journal_file_name(u64::MAX))]),
            with_journal(vec![entry(0, "00000000.enpassdb")]),
            with_journal(vec![entry(2, "00000002.enpassdb"), entry(2, "00000002.enpassdb")]),
            with_journal(vec![entry(3, "00000003.enpassdb"), entry(2, "00000002.enpassdb")]),
            b"{".to_vec(),
            b"[]".to_vec(),
            format!("{{\"vault_uuid\":\"{}\",\"remote_version\":null,\"local_db_sha256\":null,\"last_sync\":null}}", "u".repeat(MAX_UUID_LEN + 1)).into_bytes(),
            format!("{{\"vault_uuid\":\"u\",\"remote_version\":\"{}\",\"local_db_sha256\":null,\"last_sync\":null}}", "v".repeat(MAX_VERSION_LEN + 1)).into_bytes(),
            b"{\"vault_uuid\":\"u\",\"remote_version\":null,\"local_db_sha256\":\"../x\",\"last_sync\":null}".to_vec(),
        ] {
            let e = SyncState::from_json(&bad).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
        }
    }

    #[test]
    fn journal_rotation_uses_the_derived_name_even_for_a_state_built_in_memory() {
        let tmp = tempfile::tempdir().unwrap();
        let sd = StateDir::open(tmp.path().join("a/s"))
            .unwrap()
            .with_journal_len(1);
        let victim = tmp.path().join("victim.txt");
        std::fs::write(&victim, b"x").unwrap();
        let db = tmp.path().join("db");
        std::fs::write(&db, b"db").unwrap();
        let mut st = SyncState {
            journal: vec![entry(1, "../../../victim.txt")],
            ..Default::default()
        };
        sd.record_commit(&mut st, &db, "v2", 0).unwrap();
        assert!(victim.exists());
        assert_eq!(st.journal.len(), 1);
        assert_eq!(
            (st.journal[0].seq, st.journal[0].file.as_str()),
            (2, "00000002.enpassdb")
        );
        let mut st = SyncState {
            journal: vec![entry(u64::MAX - 1, "x")],
            ..Default::default()
        };
        let e = sd.record_commit(&mut st, &db, "v", 0).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    }

    #[test]
    fn an_unusable_state_json_is_moved_aside() {
        let tmp = tempfile::tempdir().unwrap();
        let sd = StateDir::open(tmp.path().join("s")).unwrap();
        std::fs::write(sd.path().join("state.json"), b"\xff garbage").unwrap();
        assert_eq!(sd.load().unwrap(), SyncState::default());
        assert!(!sd.path().join("state.json").exists());
        let aside: Vec<_> = std::fs::read_dir(sd.path())
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("state.json.corrupt-")
            })
            .collect();
        assert_eq!(aside.len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_state_json_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let sd = StateDir::open(tmp.path().join("s")).unwrap();
        let other = tmp.path().join("other.json");
        std::fs::write(&other, serde_json::to_vec(&SyncState::default()).unwrap()).unwrap();
        std::os::unix::fs::symlink(&other, sd.path().join("state.json")).unwrap();
        assert_eq!(sd.load().unwrap(), SyncState::default());
        assert!(other.exists());
        assert!(std::fs::symlink_metadata(sd.path().join("state.json")).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn links_where_the_databases_are_kept_are_removed_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let secret = tmp.path().join("secret");
        std::fs::write(&secret, b"s").unwrap();
        let sd = StateDir::open(tmp.path().join("s")).unwrap();
        std::os::unix::fs::symlink(&secret, sd.base_db()).unwrap();
        std::os::unix::fs::symlink(&secret, sd.journal_path(1)).unwrap();
        let sd = StateDir::open(sd.path()).unwrap();
        assert!(std::fs::symlink_metadata(sd.base_db()).is_err());
        assert!(std::fs::symlink_metadata(sd.journal_path(1)).is_err());
        assert!(secret.exists());
    }

    #[test]
    fn temp_files_are_removed_by_their_guard_and_swept_only_when_dead() {
        let tmp = tempfile::tempdir().unwrap();
        let sd = StateDir::open(tmp.path().join("s")).unwrap();
        let t = sd.temp_file("x").unwrap();
        let p = t.path().to_path_buf();
        assert!(p.exists());
        drop(t);
        assert!(!p.exists());

        // A live one (held), a dead one (nobody holds it), both old enough.
        let live = sd.temp_file("live").unwrap();
        let dead = sd.path().join(".tmp-download-99999");
        std::fs::write(&dead, b"left by a crash").unwrap();
        let old = SystemTime::now() - 2 * STALE_TEMP_AGE;
        for p in [live.path(), dead.as_path()] {
            File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let _again = StateDir::open(sd.path()).unwrap();
        assert!(live.path().exists(), "a live writer's file was swept");
        assert!(!dead.exists(), "a crashed run's file was kept");
    }

    #[cfg(unix)]
    #[test]
    fn temp_files_and_written_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let sd = StateDir::open(tmp.path().join(".syncfabric/s")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let t = sd.temp_file("x").unwrap();
        assert_eq!(mode(t.path()), 0o600);
        write_atomic(&tmp.path().join("c.toml"), b"a").unwrap();
        assert_eq!(mode(&tmp.path().join("c.toml")), 0o600);
        assert_eq!(mode(sd.path()), 0o700);
        assert_eq!(mode(&tmp.path().join(".syncfabric")), 0o700);
        assert_eq!(mode(&sd.path().join("journal")), 0o700);
    }
}
