//! Opening SQLCipher files with a raw key, telling a wrong key from damage, verifying
//! every page, and the schema of a new vault.

use std::io::Read;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::crypto::{self, PAGE_SIZE};
use crate::error::{Error, Result};
use crate::secret::VaultKey;

/// Reads the first page of a database file and checks its length: empty, shorter than
/// one page or not a whole number of pages is [`Error::Corrupt`].
pub(crate) fn read_page1(path: &Path) -> Result<Vec<u8>> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    if len == 0 {
        return Err(Error::Corrupt(format!("{} is empty", path.display())));
    }
    if len < PAGE_SIZE as u64 || len % PAGE_SIZE as u64 != 0 {
        return Err(Error::Corrupt(format!(
            "{} is truncated ({len} bytes is not a whole number of {PAGE_SIZE}-byte pages)",
            path.display()
        )));
    }
    let mut page = vec![0u8; PAGE_SIZE];
    f.read_exact(&mut page).map_err(|e| Error::io(path, e))?;
    Ok(page)
}

/// The salt of a database file: its first 16 bytes.
pub(crate) fn file_salt(path: &Path) -> Result<[u8; 16]> {
    let page = read_page1(path)?;
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&page[..16]);
    Ok(salt)
}

/// Opens `path` with `key` (SQLCipher 3 settings) and proves the key by reading the
/// schema. Wrong key → [`Error::WrongKey`]; right key but damaged page 1 →
/// [`Error::Corrupt`].
pub(crate) fn open_keyed(path: &Path, key: &VaultKey, read_only: bool) -> Result<Connection> {
    // A process killed inside a transaction leaves a hot rollback journal; SQLite
    // restores the file from it on the first read. Until then the file on disk may
    // hold pages of the unfinished transaction, so it is judged only after that read.
    let mut journal = path.as_os_str().to_owned();
    journal.push("-journal");
    let hot_journal = std::fs::metadata(&journal)
        .map(|m| m.len() > 0)
        .unwrap_or(false);
    let early_page1 = if hot_journal {
        None
    } else {
        Some(read_page1(path)?)
    };
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    apply_key(&conn, &key.pragma_key())?;
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(_) => {
            let page1 = match early_page1 {
                Some(p) => p,
                None => read_page1(path)?,
            };
            // Truncation at a page boundary leaves every remaining page valid: compare
            // the header's page count with the file's.
            let file_pages = std::fs::metadata(path)
                .map_err(|e| Error::io(path, e))?
                .len()
                / PAGE_SIZE as u64;
            if let Some(hdr_pages) = crypto::page1_header(&page1, key.expose_raw()) {
                if u64::from(hdr_pages) > file_pages {
                    return Err(Error::Corrupt(format!(
                        "{} is truncated: its header counts {hdr_pages} pages, the file holds {file_pages}",
                        path.display()
                    )));
                }
            }
            Ok(conn)
        }
        Err(e) if is_not_a_db(&e) => {
            let page1 = match early_page1 {
                Some(p) => p,
                None => read_page1(path)?,
            };
            if crypto::page1_header_plausible(&page1, key.expose_raw()) {
                Err(Error::Corrupt(format!(
                    "{}: a page fails its HMAC (the key opens page 1, so the file is damaged)",
                    path.display()
                )))
            } else {
                Err(Error::WrongKey)
            }
        }
        Err(e) => Err(corrupt_or_db(path, e)),
    }
}

/// Sets a key (a full `PRAGMA key = ...;` statement or the value for a new file) and
/// the SQLCipher 3 compatibility settings on a fresh connection.
///
/// Keying runs one connection at a time in the process: `cipher_log_level` and the
/// codec's first activation touch SQLCipher's process-wide state, and under parallel
/// opens (the test suite, a CLI syncing several vaults) a key statement was seen to
/// fail spuriously about once in a few thousand opens. The statements take
/// microseconds (the key is raw: derivation happened before), so the lock costs
/// nothing measurable.
pub(crate) fn apply_key(conn: &Connection, pragma_key_stmt: &str) -> Result<()> {
    static KEYING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = KEYING.lock().unwrap_or_else(|p| p.into_inner());
    set_process_defaults(conn);
    // SQLCipher would log HMAC failures to stderr; errors reach the caller as values.
    let _ = conn.execute_batch("PRAGMA cipher_log_level = NONE;");
    // SQLite's message for a failed statement may quote it: never let it carry the key.
    conn.execute_batch(pragma_key_stmt)
        .map_err(|_| Error::Unsupported("SQLCipher rejected the key statement".into()))?;
    conn.execute_batch("PRAGMA cipher_compatibility = 3;")?;
    Ok(())
}

/// Makes SQLCipher 3 settings the process-wide default, once, before the first key is
/// set. `PRAGMA cipher_compatibility = 3` after `PRAGMA key` fixes the codec settings
/// but a *new* file would still get SQLCipher 4's reserve (80 bytes) in its header;
/// Enpass files have 48. Every SQLCipher file this crate touches is SQLCipher 3, so the
/// default is right for all of them (documented in the crate docs).
fn set_process_defaults(conn: &Connection) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = conn.execute_batch("PRAGMA cipher_default_compatibility = 3;");
    });
}

/// Opens (creating) a new SQLCipher 3 file whose salt is the key's salt.
pub(crate) fn create_keyed(path: &Path, key: &VaultKey) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let mut stmt = zeroize::Zeroizing::new(String::from("PRAGMA key = \""));
    stmt.push_str(&key.pragma_key_with_salt());
    stmt.push_str("\";");
    apply_key(&conn, &stmt)?;
    Ok(conn)
}

pub(crate) fn is_not_a_db(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::NotADatabase || f.code == rusqlite::ErrorCode::DatabaseCorrupt)
}

/// Maps "not a database"/"corrupt" on an already-unlocked file to [`Error::Corrupt`].
pub(crate) fn corrupt_or_db(path: &Path, e: rusqlite::Error) -> Error {
    if is_not_a_db(&e) {
        Error::Corrupt(format!("{}: {e}", path.display()))
    } else {
        Error::Database(e)
    }
}

/// Checks every page's HMAC (`PRAGMA cipher_integrity_check`) and, when `full`, the
/// b-trees (`PRAGMA integrity_check`).
pub(crate) fn verify(conn: &Connection, path: &Path, full: bool) -> Result<()> {
    let mut problems = Vec::new();
    {
        let mut st = conn
            .prepare("PRAGMA cipher_integrity_check")
            .map_err(|e| corrupt_or_db(path, e))?;
        let mut rows = st.query([]).map_err(|e| corrupt_or_db(path, e))?;
        while let Some(r) = rows.next().map_err(|e| corrupt_or_db(path, e))? {
            let s: String = r.get(0).unwrap_or_default();
            problems.push(s);
        }
    }
    if !problems.is_empty() {
        return Err(Error::Corrupt(format!(
            "{}: cipher_integrity_check: {}",
            path.display(),
            problems
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    if !full {
        return Ok(());
    }
    let pragma = "PRAGMA integrity_check";
    let mut st = conn.prepare(pragma).map_err(|e| corrupt_or_db(path, e))?;
    let res: Vec<String> = st
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|it| it.collect())
        .map_err(|e| corrupt_or_db(path, e))?;
    if res.len() == 1 && res[0] == "ok" {
        Ok(())
    } else {
        Err(Error::Corrupt(format!(
            "{}: {pragma}: {}",
            path.display(),
            res.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
        )))
    }
}

/// The schema of a vault made by Enpass 6 (taken from a real vault, statement for
/// statement, in the order Enpass creates the tables).
pub(crate) const ENPASS_SCHEMA: &[&str] = &[
    "CREATE TABLE Identity(ID INTEGER PRIMARY KEY AUTOINCREMENT CHECK (ID=1), Version INTEGER, Signature TEXT, Sync_UUID TEXT, Hash TEXT, Info BLOB)",
    "CREATE TABLE vault_info(ID INTEGER PRIMARY KEY AUTOINCREMENT,vault_uuid TEXT UNIQUE NOT NULL,mp BLOB,keyfile BLOB,key BLOB,UNIQUE(vault_uuid) ON CONFLICT REPLACE)",
    "CREATE TABLE item(ID INTEGER PRIMARY KEY AUTOINCREMENT,uuid TEXT UNIQUE NOT NULL,created_at INTEGER,meta_updated_at INTEGER,field_updated_at INTEGER,title TEXT,subtitle TEXT,note TEXT,icon TEXT,favorite INTEGER DEFAULT 0,trashed INTEGER DEFAULT 0,archived INTEGER DEFAULT 0,deleted INTEGER DEFAULT 0,auto_submit INTEGER DEFAULT 1,form_data TEXT DEFAULT '',category TEXT,template TEXT,wearable INTEGER DEFAULT 0,usage_count INTEGER DEFAULT 0,last_used INTEGER,key BLOB,extra TEXT DEFAULT '',updated_at INTEGER DEFAULT 0)",
    "CREATE TABLE itemfield(ID INTEGER PRIMARY KEY AUTOINCREMENT,item_uuid TEXT,item_field_uid INTEGER,label TEXT,value TEXT,deleted INTEGER,sensitive INTEGER,historical INTEGER,type TEXT,form_id TEXT,updated_at INTEGER,value_updated_at INTEGER,orde INTEGER,wearable INTEGER,history TEXT,initial TEXT,hash TEXT,strength INTEGER DEFAULT -1,algo_version INTEGER DEFAULT 0,expiry INTEGER DEFAULT 0,excluded INTEGER DEFAULT 0,pwned_check_time INTEGER DEFAULT 0,extra TEXT DEFAULT '',UNIQUE(item_uuid,item_field_uid) ON CONFLICT REPLACE)",
    "CREATE TABLE versions(ID INTEGER PRIMARY KEY AUTOINCREMENT,verison_key TEXT UNIQUE NOT NULL,verison_value INTEGER,UNIQUE(verison_key) ON CONFLICT REPLACE)",
    "CREATE TABLE folder(ID INTEGER PRIMARY KEY AUTOINCREMENT,uuid TEXT UNIQUE NOT NULL,title TEXT,icon TEXT,updated_at INTEGER,deleted INTEGER,parent_uuid TEXT,extra TEXT DEFAULT '')",
    "CREATE TABLE folder_items(ID INTEGER PRIMARY KEY AUTOINCREMENT,folder_uuid TEXT,item_uuid TEXT,updated_at INTEGER,deleted INTEGER,extra TEXT DEFAULT '',UNIQUE(folder_uuid, item_uuid) ON CONFLICT REPLACE)",
    "CREATE TABLE attachment(ID INTEGER PRIMARY KEY AUTOINCREMENT,uuid TEXT UNIQUE NOT NULL,item_uuid TEXT,name TEXT,size INTEGER,orde INTEGER,mime TEXT,updated_at INTEGER,created_at INTEGER,deleted INTEGER,internal INTEGER,password blob,data blob,extra TEXT DEFAULT '')",
    "CREATE TABLE custom_icon(ID INTEGER PRIMARY KEY AUTOINCREMENT,uuid TEXT NOT NULL,data BLOB,updated_at INTEGER,deleted INTEGER,type INTEGER,extra TEXT, UNIQUE(uuid) ON CONFLICT REPLACE)",
    "CREATE TABLE preferences(ID INTEGER PRIMARY KEY AUTOINCREMENT,vault TEXT,key TEXT,value BLOB,UNIQUE(vault,key) ON CONFLICT REPLACE)",
    "CREATE TABLE share_info(ID INTEGER PRIMARY KEY AUTOINCREMENT,uuid TEXT UNIQUE NOT NULL,title TEXT,value TEXT,updated_at INTEGER,deleted INTEGER)",
    "CREATE TABLE template(ID INTEGER PRIMARY KEY AUTOINCREMENT,uuid TEXT UNIQUE NOT NULL,title TEXT,cateogry_uuid TEXT,icon TEXT,field_json TEXT,updated_at INTEGER,deleted INTEGER,extra TEXT DEFAULT '')",
    "CREATE TABLE category(ID INTEGER PRIMARY KEY AUTOINCREMENT,uuid TEXT,title TEXT,icon TEXT,updated_at INTEGER,deleted INTEGER,extra TEXT DEFAULT '')",
    "CREATE TABLE password_history(ID INTEGER PRIMARY KEY AUTOINCREMENT,uuid TEXT UNIQUE NOT NULL,password BLOB,created_at INTEGER,domain TEXT,deleted INTEGER,extra TEXT)",
];

/// The migration markers a real Enpass 6 vault carries in `versions` (so Enpass does
/// not re-run its upgrades on a vault we created).
pub(crate) const ENPASS_VERSIONS: &[(&str, i64)] = &[
    ("itemfield-history", 2),
    ("attachment-updated_at", 1),
    ("fix-orphaned-templates", 1),
    ("fix-wrong-ordered-templates", 1),
    ("fav_force_update", 1),
    ("itemfield_extra_version", 1),
];
