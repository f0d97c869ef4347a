//! The local sync state of one vault against one remote.
//!
//! It lives in a folder of its own (by default `<vault folder>/.syncfabric/<remote>/`):
//!
//! * `state.json` — the remote version last committed or seen, the content hash of the
//!   local database right after that sync (to tell "no local change" without opening
//!   it), and the journal index. Written atomically (temp file + rename).
//! * `base.enpassdb` — the database as last committed to the remote: the base of the
//!   next three-way merge. Encrypted with the vault key exactly like the vault itself.
//! * `journal/<n>.enpassdb` — the last few committed remote databases, for `restore`.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// How many committed remote databases the journal keeps by default (see
/// [`StateDir::with_journal_len`]).
pub const JOURNAL_LEN: usize = 5;

/// One committed remote database kept in the journal.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct JournalEntry {
    /// Sequence number (grows by one per commit seen).
    pub seq: u64,
    /// The remote version of that database.
    pub remote_version: String,
    /// Unix seconds when it was recorded.
    pub recorded_at: u64,
    /// File name inside `journal/`.
    pub file: String,
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

/// The folder holding a [`SyncState`] and its files.
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
    journal_len: usize,
}

impl StateDir {
    /// Uses (and creates) `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<StateDir> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join("journal"))?;
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

    /// A scratch file path inside the state folder (same filesystem, so renames are atomic).
    pub fn temp_path(&self, what: &str) -> PathBuf {
        self.dir.join(format!(".tmp-{what}-{}", std::process::id()))
    }

    /// The journal file of one entry.
    pub fn journal_file(&self, e: &JournalEntry) -> PathBuf {
        self.dir.join("journal").join(&e.file)
    }

    /// Reads `state.json`; a missing file is the empty state.
    pub fn load(&self) -> std::io::Result<SyncState> {
        match std::fs::read(self.dir.join("state.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("state.json: {e}"))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SyncState::default()),
            Err(e) => Err(e),
        }
    }

    /// Writes `state.json` atomically.
    pub fn save(&self, state: &SyncState) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(state)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        write_atomic(&self.dir.join("state.json"), &bytes)
    }

    /// Installs `committed` (a database file just committed to the remote) as the new
    /// base and as the newest journal entry, dropping the oldest beyond the journal's
    /// length ([`JOURNAL_LEN`] unless [`StateDir::with_journal_len`] set another).
    pub fn record_commit(
        &self,
        state: &mut SyncState,
        committed: &Path,
        remote_version: &str,
        now: u64,
    ) -> std::io::Result<()> {
        let seq = state.journal.last().map(|e| e.seq + 1).unwrap_or(1);
        let entry = JournalEntry {
            seq,
            remote_version: remote_version.to_string(),
            recorded_at: now,
            file: format!("{seq:08}.enpassdb"),
        };
        let jtmp = self.temp_path("journal");
        std::fs::copy(committed, &jtmp)?;
        sync_file(&jtmp)?;
        std::fs::rename(&jtmp, self.journal_file(&entry))?;
        let btmp = self.temp_path("base");
        std::fs::copy(committed, &btmp)?;
        sync_file(&btmp)?;
        std::fs::rename(&btmp, self.base_db())?;
        state.journal.push(entry);
        while state.journal.len() > self.journal_len {
            let old = state.journal.remove(0);
            let _ = std::fs::remove_file(self.journal_file(&old));
        }
        sync_dir(&self.dir)
    }
}

fn sync_file(p: &Path) -> std::io::Result<()> {
    std::fs::File::open(p)?.sync_all()
}

fn sync_dir(p: &Path) -> std::io::Result<()> {
    // Directories can be fsynced on Unix; elsewhere this is best effort.
    match std::fs::File::open(p) {
        Ok(f) => f.sync_all().or(Ok(())),
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to `path` through a temp file, fsync and rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
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
    }
}
