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

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

/// One SQLite value.
#[derive(Clone)]
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

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
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

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (name, t) in &self.tables {
            m.entry(name, &format_args!("{} rows", t.rows.len()));
        }
        m.finish()
    }
}
