//! Snapshots: the decrypted content of a vault database as plain rows.
//!
//! A [`Snapshot`] is what the merge engine reads and writes and what the sync engine
//! keeps as the base of the next three-way merge. It holds every syncable table of the
//! database, including tables and columns this code does not know, keyed by each
//! table's identity (`item.uuid`, `itemfield(item_uuid, item_field_uid)`, ...).
//!
//! Encryption is undone in a snapshot so that two copies of the same content compare
//! equal whatever item keys each device rotated to:
//! * the `item.key` column is not part of the snapshot (the vault gives an item a
//!   fresh key whenever it writes the item);
//! * `itemfield.value` holds the plaintext value, also for password fields;
//! * `itemfield.history` holds the decrypted history as a JSON array of
//!   `{"updated_at": <unix s>, "value": "<plaintext>"}` objects, oldest first.
//!
//! A snapshot therefore contains secrets: its `Debug` output shows table names and row
//! counts only, and [`Value`]'s `Debug` never prints text or bytes.
//!
//! ## Streaming: [`RowSource`]
//! A whole [`Snapshot`] costs about 1 KB of memory per row (a 32-byte [`Value`] per
//! cell, a heap `Vec` per row, an owned `String` per text): fine for tests and small
//! vaults, not for three copies of a 100,000-item vault. The merge therefore reads its
//! inputs through [`RowSource`]: table by table, rows in ascending key order, one row
//! at a time through a [`RowCursor`] whose buffers are reused. A [`Snapshot`] is a
//! `RowSource`; so are a vault ([`crate::Vault::rows`]) and a verified database file
//! ([`crate::open_snapshot_file`]), which read their rows with `ORDER BY <key>` cursors and
//! never hold more than one row per table.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

/// One SQLite value.
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer.
    Integer(i64),
    /// A floating-point number.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl Value {
    /// The integer, if this is one (or a real with an integral value).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            Value::Real(r) if r.fract() == 0.0 => Some(*r as i64),
            Value::Text(t) => t.trim().parse().ok(),
            _ => None,
        }
    }

    /// The text, if this is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Integer(_) | Value::Real(_) => 1,
            Value::Text(_) => 2,
            Value::Blob(_) => 3,
        }
    }
}

/// `clone_from` reuses the target's text or byte buffer when both are of the same kind,
/// so row cursors can refill their buffers without allocating.
impl Clone for Value {
    fn clone(&self) -> Self {
        match self {
            Value::Null => Value::Null,
            Value::Integer(i) => Value::Integer(*i),
            Value::Real(r) => Value::Real(*r),
            Value::Text(t) => Value::Text(t.clone()),
            Value::Blob(b) => Value::Blob(b.clone()),
        }
    }

    fn clone_from(&mut self, source: &Self) {
        match (&mut *self, source) {
            (Value::Text(a), Value::Text(b)) => a.clone_from(b),
            (Value::Blob(a), Value::Blob(b)) => a.clone_from(b),
            (slot, src) => *slot = src.clone(),
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        // Same-kind values first (the common case, and cheaper than `cmp` for text).
        match (self, other) {
            (Value::Integer(a), Value::Integer(b)) => a == b,
            (Value::Text(a), Value::Text(b)) => a == b,
            (Value::Null, Value::Null) => true,
            (Value::Blob(a), Value::Blob(b)) => a == b,
            _ => self.cmp(other) == Ordering::Equal,
        }
    }
}
impl Eq for Value {}
impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
/// A total order (SQLite's: NULL < numbers < text < blobs; reals by `total_cmp`), so
/// values can be keys and merges can break ties deterministically.
impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        use Value::*;
        match (self, other) {
            (Integer(a), Integer(b)) => a.cmp(b),
            (Real(a), Real(b)) => a.total_cmp(b),
            (Integer(a), Real(b)) => (*a as f64).total_cmp(b).then(Ordering::Less),
            (Real(a), Integer(b)) => a.total_cmp(&(*b as f64)).then(Ordering::Greater),
            (Text(a), Text(b)) => a.cmp(b),
            (Blob(a), Blob(b)) => a.cmp(b),
            (Null, Null) => Ordering::Equal,
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("Null"),
            Value::Integer(i) => write!(f, "Integer({i})"),
            Value::Real(r) => write!(f, "Real({r})"),
            Value::Text(t) => write!(f, "Text(<{} bytes>)", t.len()),
            Value::Blob(b) => write!(f, "Blob(<{} bytes>)", b.len()),
        }
    }
}

/// The identity of a row within its table: the values of the table's key columns.
/// (`clone_from` reuses buffers, see [`Value`].)
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct RowKey(pub Vec<Value>);

/// One row: values aligned with [`Table::columns`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Row(pub Vec<Value>);

/// One table of a snapshot.
#[derive(Clone, PartialEq, Debug)]
pub struct Table {
    /// Every column of the table, in the database's order (unknown ones included).
    pub columns: Vec<String>,
    /// The columns that identify a row (a subset of `columns`).
    pub key_columns: Vec<String>,
    /// The rows, by identity.
    pub rows: BTreeMap<RowKey, Row>,
}

impl Table {
    /// An empty table with these columns and key.
    pub fn new(columns: Vec<String>, key_columns: Vec<String>) -> Table {
        Table {
            columns,
            key_columns,
            rows: BTreeMap::new(),
        }
    }

    /// The position of `column`, if the table has it.
    pub fn column_index(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == column)
    }

    /// The value of `column` in `row`, if the table has the column.
    pub fn get<'a>(&self, row: &'a Row, column: &str) -> Option<&'a Value> {
        self.column_index(column).and_then(|i| row.0.get(i))
    }
}

/// The syncable content of one vault database, by table name.
#[derive(Clone, PartialEq, Default)]
pub struct Snapshot {
    /// The tables, by name.
    pub tables: BTreeMap<String, Table>,
}

impl Snapshot {
    /// The table called `name`, if present.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }
}

/// The shape of one table, without its rows: what a [`RowSource`] says about a table
/// before it is scanned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSchema {
    /// The table name.
    pub name: String,
    /// Every column, in the source's order (see [`Table::columns`]).
    pub columns: Vec<String>,
    /// The identity columns (see [`Table::key_columns`]).
    pub key_columns: Vec<String>,
}

/// A cursor over the rows of one table, in strictly ascending key order ([`Value`]'s
/// order, compared as [`RowKey`]s). It lends its current row: what [`RowCursor::current`]
/// returns is valid until the next [`RowCursor::advance`] (implementations reuse their
/// buffers, so a scan allocates per table, not per row).
pub trait RowCursor {
    /// Moves to the next row. `Ok(false)` at the end (and on every call after it).
    fn advance(&mut self) -> crate::Result<bool>;
    /// The current row: `None` before the first [`RowCursor::advance`] and after the end.
    /// The row has one value per column of the table's [`TableSchema::columns`] and the
    /// key one per key column (a source may yield malformed rows; the merge checks).
    fn current(&self) -> Option<(&RowKey, &Row)>;
}

/// Content that can be read table by table as key-sorted rows: a [`Snapshot`] in
/// memory, a vault (`Vault::rows`) or a database file (`SnapshotFile`).
///
/// Every scan of one source sees the same content (the database sources hold one read
/// transaction for their whole life).
pub trait RowSource {
    /// Every table of the source, sorted by name.
    fn schema(&self) -> crate::Result<Vec<TableSchema>>;
    /// Calls `f` exactly once with a cursor over the rows of `table` in ascending key
    /// order (an empty cursor when the source has no such table). Several scans of one
    /// or several sources may be open at once (nested calls), which is how a three-way
    /// merge walks three sources in lockstep.
    fn scan(&self, table: &str, f: &mut dyn FnMut(&mut dyn RowCursor)) -> crate::Result<()>;
}

/// A cursor with no rows.
pub struct EmptyCursor;

impl RowCursor for EmptyCursor {
    fn advance(&mut self) -> crate::Result<bool> {
        Ok(false)
    }
    fn current(&self) -> Option<(&RowKey, &Row)> {
        None
    }
}

/// The rows of a [`Table`] in memory, in key order (its `BTreeMap` order), borrowed.
struct TableCursor<'a> {
    it: std::collections::btree_map::Iter<'a, RowKey, Row>,
    cur: Option<(&'a RowKey, &'a Row)>,
}

impl RowCursor for TableCursor<'_> {
    fn advance(&mut self) -> crate::Result<bool> {
        self.cur = self.it.next();
        Ok(self.cur.is_some())
    }
    fn current(&self) -> Option<(&RowKey, &Row)> {
        self.cur
    }
}

impl RowSource for Snapshot {
    fn schema(&self) -> crate::Result<Vec<TableSchema>> {
        Ok(self
            .tables
            .iter()
            .map(|(name, t)| TableSchema {
                name: name.clone(),
                columns: t.columns.clone(),
                key_columns: t.key_columns.clone(),
            })
            .collect())
    }

    fn scan(&self, table: &str, f: &mut dyn FnMut(&mut dyn RowCursor)) -> crate::Result<()> {
        match self.tables.get(table) {
            Some(t) => f(&mut TableCursor {
                it: t.rows.iter(),
                cur: None,
            }),
            None => f(&mut EmptyCursor),
        }
        Ok(())
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (name, t) in &self.tables {
            m.entry(name, &format_args!("{} rows", t.rows.len()));
        }
        m.finish()
    }
}
