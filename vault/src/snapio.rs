//! Snapshot export and apply: the bridge between the encrypted database and the
//! decrypted [`Snapshot`] model used by the merge and sync engines.
//!
//! ## Row identity per table
//! Every table of the database is exported except SQLite's own (`sqlite_*`). A table's
//! identity columns ([`Table::key_columns`]) are chosen by this rule, first match wins:
//! 1. the smallest `UNIQUE` constraint/index not involving the surrogate `ID` column
//!    (`item.uuid`, `itemfield(item_uuid, item_field_uid)`, `folder.uuid`,
//!    `folder_items(folder_uuid, item_uuid)`, `attachment.uuid`, `custom_icon.uuid`,
//!    `template.uuid`, `share_info.uuid`, `password_history.uuid`,
//!    `vault_info.vault_uuid`, `versions.verison_key`, `preferences(vault, key)`);
//! 2. a column named `uuid` (`category.uuid`);
//! 3. the declared primary key (`Identity.ID`, a one-row table);
//! 4. all columns (the row's content is its identity).
//!
//! The surrogate `ID INTEGER PRIMARY KEY AUTOINCREMENT` column is device-local (two
//! devices number rows differently), so it is left out of the snapshot unless it *is*
//! the identity (rule 3); rows inserted by [`Vault::apply`] get a fresh `ID`.
//! `item.key` is left out as well (see the snapshot module docs).
//! If several rows of one table share an identity, the first one (rowid order) is kept.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql, Transaction};

use crate::db;
use crate::error::{Error, Result};
use crate::fieldcrypt::{self, ItemKey};
use crate::item::field_type;
use crate::secret::VaultKey;
use crate::snapshot::{
    EmptyCursor, Row, RowCursor, RowKey, RowSource, Snapshot, Table, TableSchema, Value,
};
use crate::vault::{rekey_item, Vault};

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Integer(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Real(r) => ToSqlOutput::Borrowed(ValueRef::Real(*r)),
            Value::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

fn value_of(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// `"name"` with embedded quotes doubled.
pub(crate) fn q(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// How one database table maps to a snapshot table.
#[derive(Debug, Clone)]
pub(crate) struct TableInfo {
    pub name: String,
    /// Snapshot columns (db columns minus the surrogate ID and `item.key`).
    pub columns: Vec<String>,
    pub key_columns: Vec<String>,
}

pub(crate) fn table_infos(conn: &Connection) -> Result<Vec<TableInfo>> {
    let names: Vec<String> = {
        let mut st = conn.prepare("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")?;
        let it = st.query_map([], |r| r.get::<_, String>(0))?;
        it.collect::<rusqlite::Result<_>>()?
    };
    let mut out = Vec::new();
    for name in names {
        // (name, type, pk)
        let cols: Vec<(String, String, i64)> = {
            let mut st = conn.prepare(&format!("PRAGMA table_info({})", q(&name)))?;
            let it = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    r.get::<_, i64>(5)?,
                ))
            })?;
            it.collect::<rusqlite::Result<_>>()?
        };
        let pk: Vec<&(String, String, i64)> = {
            let mut p: Vec<_> = cols.iter().filter(|c| c.2 > 0).collect();
            p.sort_by_key(|c| c.2);
            p
        };
        let surrogate: Option<String> = match pk.as_slice() {
            [c] if c.0.eq_ignore_ascii_case("id") && c.1.eq_ignore_ascii_case("integer") => {
                Some(c.0.clone())
            }
            _ => None,
        };
        let uniques: Vec<Vec<String>> = {
            let idx: Vec<(String, i64, String)> = {
                let mut st = conn.prepare(&format!("PRAGMA index_list({})", q(&name)))?;
                let it = st.query_map([], |r| {
                    Ok((
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })?;
                it.collect::<rusqlite::Result<_>>()?
            };
            let mut u = Vec::new();
            for (iname, unique, origin) in idx {
                if unique != 1 || origin == "pk" {
                    continue;
                }
                let mut st = conn.prepare(&format!("PRAGMA index_info({})", q(&iname)))?;
                let c: Vec<Option<String>> = st
                    .query_map([], |r| r.get::<_, Option<String>>(2))?
                    .collect::<rusqlite::Result<_>>()?;
                // Expression indexes have NULL column names: unusable as identity.
                if c.iter().any(Option::is_none) {
                    continue;
                }
                let c: Vec<String> = c.into_iter().flatten().collect();
                if surrogate.as_ref().is_some_and(|s| c.iter().any(|x| x == s)) {
                    continue;
                }
                u.push(c);
            }
            u.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
            u
        };
        let all: Vec<String> = cols.iter().map(|c| c.0.clone()).collect();
        let key_columns: Vec<String> = if let Some(u) = uniques.first() {
            u.clone()
        } else if let Some(c) = all.iter().find(|c| *c == "uuid") {
            vec![c.clone()]
        } else if !pk.is_empty() {
            pk.iter().map(|c| c.0.clone()).collect()
        } else {
            all.clone()
        };
        let columns: Vec<String> = all
            .into_iter()
            .filter(|c| surrogate.as_ref() != Some(c) || key_columns.contains(c))
            .filter(|c| !(name == "item" && c == "key"))
            .collect();
        let key_columns = if key_columns.iter().all(|k| columns.contains(k)) {
            key_columns
        } else {
            columns.clone()
        };
        out.push(TableInfo {
            name,
            columns,
            key_columns,
        });
    }
    Ok(out)
}

/// Decrypts the `itemfield` cells that are stored encrypted (password values, every
/// history), looking each item's key up once per run of rows of the same item (rows
/// come sorted by `item_uuid`, so that is once per item).
struct FieldCrypt<'c> {
    conn: &'c Connection,
    /// Whether the database has `item.key` to look keys up in.
    has_keys: bool,
    ix_uuid: usize,
    ix_type: Option<usize>,
    ix_value: Option<usize>,
    ix_hist: Option<usize>,
    /// The last item looked up and its key.
    last: Option<(String, Option<ItemKey>)>,
}

impl<'c> FieldCrypt<'c> {
    /// The decryption context for `table` (only `itemfield` has encrypted cells).
    fn for_table(conn: &'c Connection, info: &TableInfo) -> Result<Option<FieldCrypt<'c>>> {
        if info.name != "itemfield" {
            return Ok(None);
        }
        let pos = |c: &str| info.columns.iter().position(|x| x == c);
        let Some(ix_uuid) = pos("item_uuid") else {
            return Ok(None);
        };
        let has_keys: i64 = conn.query_row(
            "SELECT count(*) FROM pragma_table_info('item') WHERE name='key'",
            [],
            |r| r.get(0),
        )?;
        Ok(Some(FieldCrypt {
            conn,
            has_keys: has_keys > 0,
            ix_uuid,
            ix_type: pos("type"),
            ix_value: pos("value"),
            ix_hist: pos("history"),
            last: None,
        }))
    }

    fn key(&mut self, uuid: &str) -> Result<Option<&ItemKey>> {
        if self.last.as_ref().is_none_or(|(u, _)| u != uuid) {
            let k = if self.has_keys {
                let mut st = self
                    .conn
                    .prepare_cached("SELECT key FROM item WHERE uuid=?1")?;
                let mut rows = st.query([uuid])?;
                let blob = match rows.next()? {
                    Some(r) => match r.get_ref(0)? {
                        ValueRef::Blob(b) => Some(zeroize::Zeroizing::new(b.to_vec())),
                        _ => None,
                    },
                    None => None,
                };
                fieldcrypt::item_key_from_blob(blob.as_deref().map(|v| &v[..]))
            } else {
                None
            };
            self.last = Some((uuid.to_owned(), k));
        }
        Ok(self.last.as_ref().and_then(|(_, k)| k.as_ref()))
    }

    /// Replaces the encrypted cells of one row by their plaintext.
    fn decrypt(&mut self, vals: &mut [Value]) -> Result<()> {
        let uuid = match vals.get(self.ix_uuid) {
            Some(Value::Text(u)) => u.clone(),
            _ => return Ok(()),
        };
        let encrypted = self
            .ix_type
            .and_then(|i| vals[i].as_str())
            .is_some_and(field_type::is_encrypted);
        if let (true, Some(i)) = (encrypted, self.ix_value) {
            if let Value::Text(t) = &vals[i] {
                if !t.is_empty() {
                    let pt = fieldcrypt::decrypt_value(self.key(&uuid)?, &uuid, t)?;
                    set_text(&mut vals[i], &pt);
                }
            }
        }
        if let Some(i) = self.ix_hist {
            if let Value::Text(t) = &vals[i] {
                if !t.trim().is_empty() {
                    let pt = fieldcrypt::decrypt_history(self.key(&uuid)?, &uuid, t)?;
                    set_text(&mut vals[i], &pt);
                }
            }
        }
        Ok(())
    }
}

/// Overwrites a cell with text, reusing its allocation.
fn set_text(slot: &mut Value, text: &str) {
    match slot {
        Value::Text(s) => {
            s.clear();
            s.push_str(text);
        }
        other => *other = Value::Text(text.to_owned()),
    }
}

/// Overwrites a cell with a database value, reusing its allocation when the types match.
fn set_value(slot: &mut Value, v: ValueRef<'_>) {
    match (&mut *slot, v) {
        (Value::Text(s), ValueRef::Text(t)) => {
            s.clear();
            s.push_str(&String::from_utf8_lossy(t));
        }
        (Value::Blob(b), ValueRef::Blob(x)) => {
            b.clear();
            b.extend_from_slice(x);
        }
        (_, v) => *slot = value_of(v),
    }
}

/// A `SELECT ... ORDER BY <key>` over one table, as a [`RowCursor`]: one row buffer,
/// reused; rows whose key repeats the previous one are skipped (the first in rowid
/// order is kept, as in [`Vault::snapshot`]).
struct SqlCursor<'s, 'c> {
    rows: rusqlite::Rows<'s>,
    key_ix: Vec<usize>,
    key: RowKey,
    row: Row,
    valid: bool,
    /// Whether `key` holds the previous row's key (duplicates are compared with it).
    seen: bool,
    crypt: Option<FieldCrypt<'c>>,
}

impl RowCursor for SqlCursor<'_, '_> {
    fn advance(&mut self) -> Result<bool> {
        loop {
            let Some(r) = self.rows.next()? else {
                self.valid = false;
                return Ok(false);
            };
            for (i, slot) in self.row.0.iter_mut().enumerate() {
                set_value(slot, r.get_ref(i)?);
            }
            let dup = self.seen
                && self
                    .key_ix
                    .iter()
                    .zip(&self.key.0)
                    .all(|(&i, k)| self.row.0[i] == *k);
            if dup {
                continue;
            }
            if let Some(c) = &mut self.crypt {
                c.decrypt(&mut self.row.0)?;
            }
            for (slot, &i) in self.key.0.iter_mut().zip(&self.key_ix) {
                slot.clone_from(&self.row.0[i]);
            }
            self.seen = true;
            self.valid = true;
            return Ok(true);
        }
    }

    fn current(&self) -> Option<(&RowKey, &Row)> {
        self.valid.then_some((&self.key, &self.row))
    }
}

/// The table scans of one database connection (see [`RowSource`]).
struct DbScan<'c> {
    conn: &'c Connection,
    infos: Vec<TableInfo>,
}

impl<'c> DbScan<'c> {
    fn new(conn: &'c Connection) -> Result<DbScan<'c>> {
        Ok(DbScan {
            conn,
            infos: table_infos(conn)?,
        })
    }

    fn schema(&self) -> Vec<TableSchema> {
        self.infos
            .iter()
            .map(|i| TableSchema {
                name: i.name.clone(),
                columns: i.columns.clone(),
                key_columns: i.key_columns.clone(),
            })
            .collect()
    }

    fn scan(&self, table: &str, f: &mut dyn FnMut(&mut dyn RowCursor)) -> Result<()> {
        let Some(info) = self.infos.iter().find(|i| i.name == table) else {
            f(&mut EmptyCursor);
            return Ok(());
        };
        let cols = info
            .columns
            .iter()
            .map(|c| q(c))
            .collect::<Vec<_>>()
            .join(",");
        // BINARY: the order of Value (bytes for text) whatever collation a column
        // declares; the rowid last, so that of rows sharing a key the first comes first.
        let order = info
            .key_columns
            .iter()
            .map(|c| format!("{} COLLATE BINARY", q(c)))
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!("SELECT {cols} FROM {} ORDER BY {order}", q(&info.name));
        let mut stmt = match self.conn.prepare(&format!("{sql}, _rowid_")) {
            Ok(s) => s,
            // A WITHOUT ROWID table.
            Err(_) => self.conn.prepare(&sql)?,
        };
        let key_ix: Vec<usize> = info
            .key_columns
            .iter()
            .filter_map(|k| info.columns.iter().position(|c| c == k))
            .collect();
        let crypt = FieldCrypt::for_table(self.conn, info)?;
        let mut cursor = SqlCursor {
            rows: stmt.query([])?,
            key: RowKey(vec![Value::Null; key_ix.len()]),
            key_ix,
            row: Row(vec![Value::Null; info.columns.len()]),
            valid: false,
            seen: false,
            crypt,
        };
        f(&mut cursor);
        Ok(())
    }

    /// Every table, read whole into memory.
    fn to_snapshot(&self) -> Result<Snapshot> {
        let mut snap = Snapshot::default();
        for info in &self.infos {
            let mut table = Table::new(info.columns.clone(), info.key_columns.clone());
            let mut res: Result<()> = Ok(());
            self.scan(&info.name, &mut |c| {
                res = (|| {
                    while c.advance()? {
                        if let Some((k, r)) = c.current() {
                            table.rows.insert(k.clone(), r.clone());
                        }
                    }
                    Ok(())
                })();
            })?;
            res?;
            snap.tables.insert(info.name.clone(), table);
        }
        Ok(snap)
    }
}

/// Exports the decrypted snapshot of the database behind `conn`.
pub(crate) fn export(conn: &Connection) -> Result<Snapshot> {
    DbScan::new(conn)?.to_snapshot()
}

/// A database open in one read transaction, read as a [`RowSource`]: each table by an
/// `ORDER BY <key>` cursor, decrypted row by row, so a scan holds one row per table in
/// memory whatever the vault's size. What the sync engine merges from
/// ([`open_snapshot_file`] for the base and the downloaded remote, [`Vault::rows`] for
/// the local vault).
///
/// It owns its own connection and holds a read transaction for its whole life: every
/// scan sees the same content, and a writer to the same database (e.g.
/// [`Vault::apply`]) waits (up to its busy timeout) until this reader is dropped.
pub struct SnapshotReader {
    // Declared before `conn`: dropped first (it borrows nothing, but keeps the order
    // obvious).
    infos: Vec<TableInfo>,
    conn: Connection,
    path: PathBuf,
}

impl SnapshotReader {
    fn open(path: &Path, conn: Connection) -> Result<SnapshotReader> {
        conn.execute_batch("BEGIN")?;
        // The schema is read inside the transaction, so it matches the rows.
        let infos = table_infos(&conn).map_err(|e| file_error(path, e))?;
        Ok(SnapshotReader {
            infos,
            conn,
            path: path.to_owned(),
        })
    }

    fn scanner(&self) -> DbScan<'_> {
        DbScan {
            conn: &self.conn,
            infos: self.infos.clone(),
        }
    }

    /// Every table read whole into a [`Snapshot`] (about 1 KB of memory per row).
    pub fn to_snapshot(&self) -> Result<Snapshot> {
        self.scanner()
            .to_snapshot()
            .map_err(|e| file_error(&self.path, e))
    }
}

impl std::fmt::Debug for SnapshotReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotReader")
            .field("path", &self.path)
            .field("tables", &self.infos.len())
            .finish()
    }
}

impl RowSource for SnapshotReader {
    fn schema(&self) -> Result<Vec<TableSchema>> {
        Ok(self.scanner().schema())
    }

    fn scan(&self, table: &str, f: &mut dyn FnMut(&mut dyn RowCursor)) -> Result<()> {
        let scanner = DbScan {
            conn: &self.conn,
            infos: self
                .infos
                .iter()
                .filter(|i| i.name == table)
                .cloned()
                .collect(),
        };
        let path = &self.path;
        // Errors raised by the cursor reach the caller through `f`; map the ones from
        // preparing the statement here.
        scanner.scan(table, f).map_err(|e| file_error(path, e))
    }
}

/// A damaged page found while reading a file is [`Error::Corrupt`], naming the file.
fn file_error(path: &Path, e: Error) -> Error {
    match e {
        Error::Database(e) => db::corrupt_or_db(path, e),
        other => other,
    }
}

/// What [`Vault::apply`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Rows inserted, by table.
    pub inserted: BTreeMap<String, usize>,
    /// Rows updated (some column differed), by table.
    pub updated: BTreeMap<String, usize>,
    /// Items that got a fresh item key (every item with any changed `item` or
    /// `itemfield` row).
    pub rekeyed_items: usize,
    /// Tables the snapshot had and the database lacked (created).
    pub created_tables: Vec<String>,
    /// Columns the snapshot had and the database lacked (added), as `(table, column)`.
    pub added_columns: Vec<(String, String)>,
    /// Rows present in the database but absent from the snapshot: left untouched
    /// (apply never deletes).
    pub untouched_rows: usize,
}

impl ApplyReport {
    /// Inserted + updated rows.
    pub fn changed_rows(&self) -> usize {
        self.inserted.values().sum::<usize>() + self.updated.values().sum::<usize>()
    }

    /// Nothing was written.
    pub fn is_empty(&self) -> bool {
        self.changed_rows() == 0 && self.created_tables.is_empty() && self.added_columns.is_empty()
    }
}

impl Vault {
    /// The decrypted snapshot of the vault database (see [`crate::snapshot`] and the
    /// table identities in [`crate::snapio`]), read in one read transaction.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let tx = self.conn.unchecked_transaction()?;
        // A page failing its HMAC on read (the local file was damaged): Corrupt.
        let s = export(&tx).map_err(|e| file_error(&self.db_path(), e))?;
        tx.finish()?;
        Ok(s)
    }

    /// Writes the difference between `snap` and the database, in ONE transaction:
    /// rows of `snap` that are new are inserted, rows whose values differ are updated
    /// (only the snapshot's columns are written; others keep their values), rows absent
    /// from `snap` are left alone (never deleted). Tables and columns the snapshot has
    /// and the database lacks are created. Every item with any changed `item` or
    /// `itemfield` row gets a fresh item key, and all its password values and histories
    /// are (re-)encrypted with it. Timestamps are written as they are in `snap` (the
    /// merge decided them); `vault.json` gets `last_modified_*` and counts when anything
    /// changed.
    ///
    /// Errors: [`Error::InvalidInput`] for a malformed snapshot (row/column count
    /// mismatch, key columns not among the columns, `itemfield` rows of an item that
    /// exists neither in the snapshot nor in the database); nothing is written then.
    pub fn apply(&mut self, snap: &Snapshot) -> Result<ApplyReport> {
        let mut report = ApplyReport::default();
        let tx = self.conn.transaction()?;
        // 1. Schema: tables and columns the snapshot brings.
        apply_schema(&tx, snap, &mut report)?;
        // 2-3. Diff: each snapshot row against the database row of the same identity,
        // looked up by key and decrypted (one indexed query per row; the database is
        // never read whole, so applying a few changed rows to a large vault is cheap).
        let changes = diff_snapshot(&tx, snap, &mut report)?;
        if changes.is_empty() && report.created_tables.is_empty() && report.added_columns.is_empty()
        {
            tx.finish()?;
            return Ok(report);
        }
        // 4. Items to re-key.
        let new_keys = rekey_changed_items(&tx, snap, &changes)?;
        // 5. Write the changed rows.
        for change in &changes {
            write_change(&tx, change, &new_keys, &mut report)?;
        }
        for (uuid, k) in &new_keys {
            tx.execute(
                "UPDATE item SET key=?2 WHERE uuid=?1",
                rusqlite::params![uuid, &k[..]],
            )?;
        }
        report.rekeyed_items = new_keys.len();
        tx.commit()?;
        self.touch_meta()?;
        Ok(report)
    }
}

/// A snapshot row apply must write, with its table: (table name, table, key, row,
/// `true` if absent from the database).
type TableChange<'s> = (&'s str, &'s Table, &'s RowKey, &'s Row, bool);

/// Step 1 of [`Vault::apply`]: checks each snapshot table and creates the tables and
/// columns it has and the database lacks, noting them in `report`.
fn apply_schema(conn: &Connection, snap: &Snapshot, report: &mut ApplyReport) -> Result<()> {
    let existing: BTreeMap<String, TableInfo> = table_infos(conn)?
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    for (name, t) in &snap.tables {
        check_snapshot_table(name, t)?;
        if existing.contains_key(name) {
            add_missing_columns(conn, name, t, report)?;
        } else {
            create_table(conn, name, t, report)?;
        }
    }
    Ok(())
}

/// [`Error::InvalidInput`] when snapshot table `name` is SQLite's own, its key columns
/// are not among its columns, or a row's width differs from its columns'.
fn check_snapshot_table(name: &str, t: &Table) -> Result<()> {
    if name.starts_with("sqlite_") {
        return Err(Error::InvalidInput(format!("table {name} is SQLite's own")));
    }
    if t.key_columns.is_empty() || !t.key_columns.iter().all(|k| t.columns.contains(k)) {
        return Err(Error::InvalidInput(format!(
            "table {name}: key columns must be among its columns"
        )));
    }
    if let Some((_, r)) = t.rows.iter().find(|(_, r)| r.0.len() != t.columns.len()) {
        return Err(Error::InvalidInput(format!(
            "table {name}: a row has {} values for {} columns",
            r.0.len(),
            t.columns.len()
        )));
    }
    Ok(())
}

/// Creates table `name` with the snapshot table's columns, unique on its key columns.
fn create_table(conn: &Connection, name: &str, t: &Table, report: &mut ApplyReport) -> Result<()> {
    let cols = t.columns.iter().map(|c| q(c)).collect::<Vec<_>>().join(",");
    let keys = t
        .key_columns
        .iter()
        .map(|c| q(c))
        .collect::<Vec<_>>()
        .join(",");
    conn.execute_batch(&format!("CREATE TABLE {}({cols}, UNIQUE({keys}))", q(name)))?;
    report.created_tables.push(name.to_owned());
    Ok(())
}

/// Adds to the database's table `name` the snapshot table's columns it lacks (never
/// `item.key`).
fn add_missing_columns(
    conn: &Connection,
    name: &str,
    t: &Table,
    report: &mut ApplyReport,
) -> Result<()> {
    let mut st = conn.prepare(&format!("PRAGMA table_info({})", q(name)))?;
    let have: BTreeSet<String> = st
        .query_map([], |r| r.get::<_, String>(1))?
        .collect::<rusqlite::Result<_>>()?;
    drop(st);
    for c in &t.columns {
        if !(have.contains(c) || name == "item" && c == "key") {
            conn.execute_batch(&format!("ALTER TABLE {} ADD COLUMN {}", q(name), q(c)))?;
            report.added_columns.push((name.to_owned(), c.clone()));
        }
    }
    Ok(())
}

/// Steps 2-3 of [`Vault::apply`]: the snapshot rows to write (every row of a table the
/// database lacked, then per database table the rows that differ), counting in
/// `report` the database rows the snapshot leaves untouched.
fn diff_snapshot<'s>(
    conn: &Connection,
    snap: &'s Snapshot,
    report: &mut ApplyReport,
) -> Result<Vec<TableChange<'s>>> {
    let infos: BTreeMap<String, TableInfo> = table_infos(conn)?
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let mut changes: Vec<TableChange<'s>> = Vec::new();
    for (name, t) in &snap.tables {
        if !infos.contains_key(name) {
            changes.extend(t.rows.iter().map(|(k, r)| (name.as_str(), t, k, r, true)));
        }
    }
    for (name, info) in &infos {
        let Some((name, t)) = snap.tables.get_key_value(name) else {
            report.untouched_rows += count_rows(conn, name)?;
            continue;
        };
        let (found, diff) = diff_table(conn, info, t)?;
        report.untouched_rows += count_rows(conn, name)?.saturating_sub(found);
        changes.extend(
            diff.into_iter()
                .map(|(k, r, ins)| (name.as_str(), t, k, r, ins)),
        );
    }
    Ok(changes)
}

/// Step 4 of [`Vault::apply`]: a fresh key for every item with a changed `item` or
/// `itemfield` row, its values re-encrypted; [`Error::InvalidInput`] for `itemfield`
/// rows of an item neither the snapshot nor the database has.
fn rekey_changed_items(
    tx: &Transaction<'_>,
    snap: &Snapshot,
    changes: &[TableChange<'_>],
) -> Result<HashMap<String, ItemKey>> {
    let mut rekey: BTreeSet<String> = BTreeSet::new();
    for (name, t, _, row, _) in changes {
        let col = match *name {
            "item" => "uuid",
            "itemfield" => "item_uuid",
            _ => continue,
        };
        if let Some(Value::Text(u)) = t.get(row, col) {
            rekey.insert(u.clone());
        }
    }
    let snap_items: BTreeSet<String> = snap
        .tables
        .get("item")
        .map(|t| {
            t.rows
                .values()
                .filter_map(|r| t.get(r, "uuid").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut new_keys: HashMap<String, ItemKey> = HashMap::new();
    for uuid in &rekey {
        let in_db: i64 = tx
            .query_row("SELECT count(*) FROM item WHERE uuid=?1", [uuid], |r| {
                r.get(0)
            })
            .unwrap_or(0);
        if in_db == 0 && !snap_items.contains(uuid) {
            return Err(Error::InvalidInput(format!(
                "itemfield rows for item {uuid}, which exists nowhere"
            )));
        }
        let old = crate::vault::load_item_key(tx, uuid)?;
        let k = rekey_item(tx, uuid, old.as_ref())?;
        new_keys.insert(uuid.clone(), k);
    }
    Ok(new_keys)
}

/// Step 5 of [`Vault::apply`], one row: updates it by key (`itemfield` values encrypted
/// with the new item keys), inserts it when it is new or the update found no row, and
/// counts it in `report`.
fn write_change(
    conn: &Connection,
    change: &TableChange<'_>,
    new_keys: &HashMap<String, ItemKey>,
    report: &mut ApplyReport,
) -> Result<()> {
    let &(name, t, k, row, is_insert) = change;
    let mut vals: Vec<Value> = row.0.clone();
    if name == "itemfield" {
        encrypt_field_row(t, &mut vals, new_keys)?;
    }
    let cols: Vec<(usize, &String)> = t
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| !(name == "item" && *c == "key"))
        .collect();
    let set = cols
        .iter()
        .map(|(_, c)| format!("{}=?", q(c)))
        .collect::<Vec<_>>()
        .join(",");
    let where_ = t
        .key_columns
        .iter()
        .map(|c| format!("{} IS ?", q(c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let mut params: Vec<&dyn ToSql> = cols.iter().map(|(i, _)| &vals[*i] as &dyn ToSql).collect();
    for kv in &k.0 {
        params.push(kv as &dyn ToSql);
    }
    let n = if is_insert {
        0
    } else {
        conn.execute(
            &format!("UPDATE {} SET {set} WHERE {where_}", q(name)),
            params.as_slice(),
        )?
    };
    if n == 0 {
        let names = cols.iter().map(|(_, c)| q(c)).collect::<Vec<_>>().join(",");
        let marks = vec!["?"; cols.len()].join(",");
        let p: Vec<&dyn ToSql> = cols.iter().map(|(i, _)| &vals[*i] as &dyn ToSql).collect();
        conn.execute(
            &format!("INSERT INTO {}({names}) VALUES({marks})", q(name)),
            p.as_slice(),
        )?;
        *report.inserted.entry(name.to_string()).or_default() += 1;
    } else {
        *report.updated.entry(name.to_string()).or_default() += 1;
    }
    Ok(())
}

/// A snapshot row apply must write: (key, row, `true` if absent from the database).
type RowChange<'s> = (&'s RowKey, &'s Row, bool);

fn count_rows(conn: &Connection, table: &str) -> Result<usize> {
    let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {}", q(table)), [], |r| {
        r.get(0)
    })?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// The rows of `t` that differ from the database's table `info` (`true`: absent, to be
/// inserted), and how many rows of `t` the database holds. A row is found by the
/// database's key columns (its own key values when both agree on the key, else the
/// values of those columns in the snapshot row; a snapshot lacking one of them
/// inserts). Compared column by column, decrypted; a snapshot column the database lacks
/// compares as NULL.
fn diff_table<'s>(
    conn: &Connection,
    info: &TableInfo,
    t: &'s Table,
) -> Result<(usize, Vec<RowChange<'s>>)> {
    let same_key = info.key_columns == t.key_columns;
    let key_in_snap: Option<Vec<usize>> =
        info.key_columns.iter().map(|c| t.column_index(c)).collect();
    let cols = info
        .columns
        .iter()
        .map(|c| q(c))
        .collect::<Vec<_>>()
        .join(",");
    let where_ = info
        .key_columns
        .iter()
        .map(|c| format!("{} IS ?", q(c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let sql = format!("SELECT {cols} FROM {} WHERE {where_}", q(&info.name));
    // Of rows sharing a key, the first in rowid order (as a snapshot keeps).
    let mut stmt = match conn.prepare(&format!("{sql} ORDER BY _rowid_ LIMIT 1")) {
        Ok(s) => s,
        Err(_) => conn.prepare(&format!("{sql} LIMIT 1"))?,
    };
    let mut crypt = FieldCrypt::for_table(conn, info)?;
    // Where each snapshot column is in the database row.
    let cur_ix: Vec<Option<usize>> = t
        .columns
        .iter()
        .map(|c| info.columns.iter().position(|x| x == c))
        .collect();
    let mut cur: Vec<Value> = vec![Value::Null; info.columns.len()];
    let mut found = 0;
    let mut out = Vec::new();
    for (k, row) in &t.rows {
        let params: Option<Vec<&Value>> = if same_key {
            (k.0.len() == info.key_columns.len()).then(|| k.0.iter().collect())
        } else {
            key_in_snap
                .as_ref()
                .map(|ix| ix.iter().map(|&i| &row.0[i]).collect())
        };
        let Some(params) = params else {
            if same_key {
                return Err(Error::InvalidInput(format!(
                    "table {}: a row key does not match the key columns",
                    info.name
                )));
            }
            out.push((k, row, true));
            continue;
        };
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let Some(r) = rows.next()? else {
            out.push((k, row, true));
            continue;
        };
        for (i, slot) in cur.iter_mut().enumerate() {
            set_value(slot, r.get_ref(i)?);
        }
        drop(rows);
        if let Some(c) = &mut crypt {
            c.decrypt(&mut cur)?;
        }
        found += 1;
        let differs = row.0.iter().zip(&cur_ix).any(|(v, ci)| match ci {
            Some(i) => cur[*i] != *v,
            None => *v != Value::Null,
        });
        if differs {
            out.push((k, row, false));
        }
    }
    Ok((found, out))
}

fn encrypt_field_row(t: &Table, vals: &mut [Value], keys: &HashMap<String, ItemKey>) -> Result<()> {
    let Some(uuid) = t
        .column_index("item_uuid")
        .and_then(|i| vals[i].as_str().map(str::to_owned))
    else {
        return Ok(());
    };
    let Some(key) = keys.get(&uuid) else {
        return Err(Error::InvalidInput(format!(
            "itemfield of item {uuid}: no item key"
        )));
    };
    let encrypted = t
        .column_index("type")
        .and_then(|i| vals[i].as_str())
        .is_some_and(field_type::is_encrypted);
    if let (true, Some(i)) = (encrypted, t.column_index("value")) {
        if let Value::Text(pt) = &vals[i] {
            vals[i] = Value::Text(fieldcrypt::encrypt_value(key, &uuid, pt)?);
        }
    }
    if let Some(i) = t.column_index("history") {
        if let Value::Text(pt) = &vals[i] {
            vals[i] = Value::Text(fieldcrypt::encrypt_history(key, &uuid, pt)?);
        }
    }
    Ok(())
}

/// Verifies a database file with `key` without keeping it open: the file's salt must
/// be the key's ([`Error::KeyChanged`] otherwise), then the key must unlock it
/// ([`Error::WrongKey`]), then every page's HMAC (`PRAGMA cipher_integrity_check`) and
/// `PRAGMA integrity_check` must pass ([`Error::Corrupt`]). Opens read-only: writes
/// nothing.
pub fn verify_database_file(path: impl AsRef<Path>, key: &VaultKey) -> Result<()> {
    let path = path.as_ref();
    let conn = open_verified(path, key)?;
    drop(conn);
    Ok(())
}

/// Re-encrypts the database file at `path` from `old` to `new` in place: verified with
/// `old` first (as [`verify_database_file`]), exported under `new` to a temp file beside
/// it, that copy verified with `new`, then renamed over `path`. For the copies a sync
/// keeps (the base and the journal) after the master password changed, so that none
/// of them still opens with the old one. A failure leaves `path` as it was and no
/// temp file behind.
pub fn rekey_database_file(path: impl AsRef<Path>, old: &VaultKey, new: &VaultKey) -> Result<()> {
    let path = path.as_ref();
    drop(open_verified(path, old)?);
    // Exporting attaches the target through this connection: it must be writable.
    let conn = db::open_keyed(path, old, false)?;
    let tmp = crate::fsutil::temp_sibling(path, "rekey")?;
    let res = (|| -> Result<()> {
        crate::vault::export_with_key(&conn, &tmp, new)?;
        crate::fsutil::sync_file(&tmp)?;
        drop(open_verified(&tmp, new)?);
        Ok(())
    })();
    drop(conn);
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    crate::fsutil::rename_durable(&tmp, path)
}

fn open_verified(path: &Path, key: &VaultKey) -> Result<Connection> {
    if db::file_salt(path)? != key.salt() {
        return Err(Error::KeyChanged);
    }
    let conn = db::open_keyed(path, key, true)?;
    db::verify(&conn, path, true)?;
    Ok(conn)
}

/// [`verify_database_file`], then the decrypted snapshot of that file (e.g. a remote
/// copy downloaded to a temp file), read whole into memory (about 1 KB per row; the
/// merge reads a file through [`open_snapshot_file`] instead). Opens read-only: writes
/// nothing.
pub fn read_snapshot_file(db_path: impl AsRef<Path>, key: &VaultKey) -> Result<Snapshot> {
    open_snapshot_file(db_path, key)?.to_snapshot()
}

/// [`verify_database_file`], then the file kept open read-only in one read transaction
/// as a [`SnapshotReader`]: a [`RowSource`] that streams each table in key order,
/// decrypted, without holding the file's content in memory. What the sync engine merges
/// the base and the downloaded remote from.
pub fn open_snapshot_file(db_path: impl AsRef<Path>, key: &VaultKey) -> Result<SnapshotReader> {
    let path = db_path.as_ref();
    let conn = open_verified(path, key)?;
    SnapshotReader::open(path, conn)
}

impl Vault {
    /// The vault's database as a [`SnapshotReader`] (a [`RowSource`] streaming each table
    /// in key order, decrypted): what the sync engine merges the local side from. It
    /// opens its own connection (no key derivation) and holds a read transaction until
    /// dropped; drop it before writing to the vault ([`Vault::apply`] waits for it up to
    /// its busy timeout). No page check beyond the HMAC SQLCipher verifies on every read.
    pub fn rows(&self) -> Result<SnapshotReader> {
        let path = self.db_path();
        let conn = db::open_keyed(&path, &self.key, false)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        SnapshotReader::open(&path, conn)
    }
}

/// The uuids of the live items (not deleted, not trashed) in a database file, read with
/// one indexed query and no decryption of fields: what a mass-delete check needs,
/// without a whole snapshot. Pages are still HMAC-checked as SQLCipher reads them.
/// Opens read-only: writes nothing.
pub fn live_item_uuids_in_file(
    db_path: impl AsRef<Path>,
    key: &VaultKey,
) -> Result<BTreeSet<String>> {
    let path = db_path.as_ref();
    let conn = db::open_keyed(path, key, true)?;
    live_item_uuids_of(&conn).map_err(|e| match e {
        Error::Database(e) => db::corrupt_or_db(path, e),
        other => other,
    })
}

/// The uuids of every item row of a database file, tombstones and trash included.
/// Rows are never removed, so a database that descends from another holds all of its
/// item uuids. One query, read-only.
pub fn all_item_uuids_in_file(
    db_path: impl AsRef<Path>,
    key: &VaultKey,
) -> Result<BTreeSet<String>> {
    let path = db_path.as_ref();
    let conn = db::open_keyed(path, key, true)?;
    uuids_of(&conn, "SELECT uuid FROM item").map_err(|e| match e {
        Error::Database(e) => db::corrupt_or_db(path, e),
        other => other,
    })
}

/// What tells one version of an item from another, without decrypting anything: the
/// item row's `updated_at`, `meta_updated_at`, `field_updated_at`, `deleted`, `trashed`,
/// and of its `itemfield` rows the count, the latest `updated_at` and the total length
/// of their histories (a merge can add a losing value to a field's history and keep
/// the item row as it was).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemStamp {
    /// `item.updated_at`.
    pub updated_at: i64,
    /// `item.meta_updated_at`.
    pub meta_updated_at: i64,
    /// `item.field_updated_at`.
    pub field_updated_at: i64,
    /// `item.deleted`.
    pub deleted: bool,
    /// `item.trashed`.
    pub trashed: bool,
    /// How many `itemfield` rows the item has.
    pub field_rows: i64,
    /// The latest `itemfield.updated_at` of the item.
    pub fields_updated_at: i64,
    /// The total length of the item's `itemfield.history` cells.
    pub history_bytes: i64,
}

/// Every item row's [`ItemStamp`] by uuid, tombstones included.
pub type ItemStamps = std::collections::BTreeMap<String, ItemStamp>;

fn item_stamps_of(conn: &Connection) -> Result<ItemStamps> {
    let mut stmt = conn.prepare(
        "SELECT i.uuid, ifnull(i.updated_at,0), ifnull(i.meta_updated_at,0), ifnull(i.field_updated_at,0), \
         ifnull(i.deleted,0), ifnull(i.trashed,0), ifnull(f.n,0), ifnull(f.at,0), ifnull(f.h,0) FROM item i \
         LEFT JOIN (SELECT item_uuid, count(*) AS n, max(ifnull(updated_at,0)) AS at, \
         sum(length(ifnull(history,''))) AS h FROM itemfield GROUP BY item_uuid) f ON f.item_uuid = i.uuid",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            ItemStamp {
                updated_at: r.get(1)?,
                meta_updated_at: r.get(2)?,
                field_updated_at: r.get(3)?,
                deleted: r.get::<_, i64>(4)? != 0,
                trashed: r.get::<_, i64>(5)? != 0,
                field_rows: r.get(6)?,
                fields_updated_at: r.get(7)?,
                history_bytes: r.get(8)?,
            },
        ))
    })?;
    let mut out = ItemStamps::new();
    for r in rows {
        let (k, v) = r?;
        out.insert(k, v);
    }
    Ok(out)
}

/// The [`ItemStamps`] of a database file (one query, read-only): with those of
/// another version, what changed between the two.
pub fn item_stamps_in_file(db_path: impl AsRef<Path>, key: &VaultKey) -> Result<ItemStamps> {
    let path = db_path.as_ref();
    let conn = db::open_keyed(path, key, true)?;
    item_stamps_of(&conn).map_err(|e| match e {
        Error::Database(e) => db::corrupt_or_db(path, e),
        other => other,
    })
}

pub(crate) fn live_item_uuids_of(conn: &Connection) -> Result<BTreeSet<String>> {
    uuids_of(
        conn,
        "SELECT uuid FROM item WHERE ifnull(deleted,0)=0 AND ifnull(trashed,0)=0",
    )
}

fn uuids_of(conn: &Connection, sql: &str) -> Result<BTreeSet<String>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = BTreeSet::new();
    for r in rows {
        out.insert(r?);
    }
    Ok(out)
}

impl Vault {
    /// The uuids of this vault's live items (not deleted, not trashed); see
    /// [`live_item_uuids_in_file`].
    pub fn live_item_uuids(&self) -> Result<BTreeSet<String>> {
        live_item_uuids_of(self.connection())
    }

    /// This vault's [`ItemStamps`] (see [`item_stamps_in_file`]).
    pub fn item_stamps(&self) -> Result<ItemStamps> {
        item_stamps_of(self.connection())
    }
}

/// The attachment uuids of a database file whose content lives in
/// `<uuid>.enpassattach` files, as (live, deleted). One query, read-only.
pub fn attachment_files_in_file(
    db_path: impl AsRef<Path>,
    key: &VaultKey,
) -> Result<(BTreeSet<String>, BTreeSet<String>)> {
    let path = db_path.as_ref();
    let conn = db::open_keyed(path, key, true)?;
    let run = || -> Result<(BTreeSet<String>, BTreeSet<String>)> {
        let mut stmt = conn.prepare(
            "SELECT uuid, ifnull(deleted,0) FROM attachment WHERE password IS NOT NULL AND length(password)>0",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let (mut live, mut dead) = (BTreeSet::new(), BTreeSet::new());
        for r in rows {
            let (uuid, deleted) = r?;
            if deleted != 0 {
                dead.insert(uuid);
            } else {
                live.insert(uuid);
            }
        }
        Ok((live, dead))
    };
    run().map_err(|e| match e {
        Error::Database(e) => db::corrupt_or_db(path, e),
        other => other,
    })
}

impl Vault {
    /// Replaces this vault's database with a copy of the database file `src` (e.g. a
    /// downloaded remote copy), after verifying it with this vault's key (same salt,
    /// every page's HMAC, `integrity_check`). The copy is made beside the vault,
    /// fsynced and renamed over `vault.enpassdb`, so a crash leaves the old database or
    /// the new one, never a mix. `src` is left in place.
    pub fn adopt_database_file(&mut self, src: impl AsRef<Path>) -> Result<()> {
        let src = src.as_ref();
        verify_database_file(src, &self.key)?;
        let db_path = self.db_path();
        let tmp = self.dir.join(".vault.enpassdb.adopt");
        std::fs::copy(src, &tmp).map_err(|e| Error::io(&tmp, e))?;
        crate::fsutil::make_private(&tmp)?; // not the source's mode
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(&tmp, e))?;
        // Close our handle on the old file before replacing it.
        let placeholder = Connection::open_in_memory()?;
        drop(std::mem::replace(&mut self.conn, placeholder));
        let renamed = crate::fsutil::rename_durable(&tmp, &db_path);
        self.conn = db::open_keyed(&db_path, &self.key, false)?;
        self.conn.busy_timeout(std::time::Duration::from_secs(10))?;
        if renamed.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        renamed
    }
}
