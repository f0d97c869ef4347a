//! Synthetic vaults for the benchmark and the peak-memory example: `items` items with
//! `fields` fields each, in the real Enpass schema (see tests/common), and two sides
//! that each edited a share of the items (a title and one field value, the old value
//! moved to the field's history as the app does).
//!
//! A [`GenVault`] is a [`RowSource`] that generates its rows in key order as they are
//! read (one reused row buffer, like the vault's `ORDER BY` cursors), so the merge can
//! be measured over three 100,000-item vaults without the inputs' memory. [`collect`]
//! reads one into an in-memory [`Snapshot`] for comparison.

#![allow(dead_code)]
// `is_multiple_of` is newer than the workspace MSRV (1.85).
#![allow(clippy::manual_is_multiple_of)]

use syncfabric_merge::{Row, RowCursor, RowKey, RowSource, Snapshot, Table, TableSchema, Value};

const T0: i64 = 1_600_000_000;

const ITEM_COLS: &[&str] = &[
    "uuid",
    "created_at",
    "meta_updated_at",
    "field_updated_at",
    "title",
    "subtitle",
    "note",
    "icon",
    "favorite",
    "trashed",
    "archived",
    "deleted",
    "auto_submit",
    "form_data",
    "category",
    "template",
    "wearable",
    "usage_count",
    "last_used",
    "extra",
    "updated_at",
];
const FIELD_COLS: &[&str] = &[
    "item_uuid",
    "item_field_uid",
    "label",
    "value",
    "deleted",
    "sensitive",
    "historical",
    "type",
    "form_id",
    "updated_at",
    "value_updated_at",
    "orde",
    "wearable",
    "history",
    "initial",
    "hash",
    "strength",
    "algo_version",
    "expiry",
    "excluded",
    "pwned_check_time",
    "extra",
];

fn cols(c: &[&str]) -> Vec<String> {
    c.iter().map(|s| (*s).to_owned()).collect()
}

/// Sets a cell to text made of `parts`, reusing its buffer (no `format!`: producing
/// rows should cost little next to merging them).
fn text(slot: &mut Value, parts: &[Part<'_>]) {
    if !matches!(slot, Value::Text(_)) {
        *slot = Value::Text(String::new());
    }
    if let Value::Text(s) = slot {
        s.clear();
        for p in parts {
            match *p {
                Part::S(x) => s.push_str(x),
                Part::Dec(n) => push_dec(s, n),
                Part::Hex(n, w) => push_hex(s, n, w),
            }
        }
    }
}

/// A piece of generated text.
enum Part<'a> {
    S(&'a str),
    Dec(i64),
    /// Lower-case hex, zero-padded to the width.
    Hex(u64, usize),
}
use Part::{Dec, Hex, S};

fn push_dec(s: &mut String, n: i64) {
    if n < 0 {
        s.push('-');
    }
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    s.extend(buf[i..].iter().map(|&b| b as char));
}

fn push_hex(s: &mut String, n: u64, width: usize) {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [b'0'; 16];
    let width = width.min(16);
    for (k, b) in buf[..width].iter_mut().rev().enumerate() {
        *b = D[((n >> (4 * k)) & 15) as usize];
    }
    s.extend(buf[..width].iter().map(|&b| b as char));
}

fn int(slot: &mut Value, n: i64) {
    *slot = Value::Integer(n);
}

fn uuid(slot: &mut Value, n: usize) {
    text(
        slot,
        &[
            Hex(n as u64, 8),
            S("-0000-4000-8000-"),
            Hex((n * 7919) as u64, 12),
        ],
    );
}

/// Which items a side edited, and how.
#[derive(Clone, Copy)]
pub struct Edit {
    pub pick: fn(usize) -> bool,
    pub tag: &'static str,
    pub at: i64,
}

/// A generated vault: `items` live items with `fields` fields each, `edit` applied.
#[derive(Clone, Copy)]
pub struct GenVault {
    pub items: usize,
    pub fields: usize,
    pub edit: Option<Edit>,
}

fn local_pick(n: usize) -> bool {
    n % 10 == 0
}

fn remote_pick(n: usize) -> bool {
    (n % 10 == 5 && n % 100 != 5) || n % 100 == 0
}

/// (base, local, remote): 10% of the items edited on each side, 1% of them on both.
pub fn scenario_sources(items: usize, fields: usize) -> (GenVault, GenVault, GenVault) {
    let v = |edit| GenVault {
        items,
        fields,
        edit,
    };
    (
        v(None),
        v(Some(Edit {
            pick: local_pick,
            tag: "local",
            at: T0 + 100,
        })),
        v(Some(Edit {
            pick: remote_pick,
            tag: "remote",
            at: T0 + 200,
        })),
    )
}

/// The same scenario as in-memory snapshots.
pub fn scenario(items: usize, fields: usize) -> (Snapshot, Snapshot, Snapshot) {
    let (b, l, r) = scenario_sources(items, fields);
    (collect(&b), collect(&l), collect(&r))
}

/// Reads a source whole into a snapshot.
pub fn collect(src: &dyn RowSource) -> Snapshot {
    let mut s = Snapshot::default();
    for t in src.schema().expect("schema") {
        let mut table = Table::new(t.columns.clone(), t.key_columns.clone());
        src.scan(&t.name, &mut |c| {
            while c.advance().expect("generated rows") {
                if let Some((k, r)) = c.current() {
                    table.rows.insert(k.clone(), r.clone());
                }
            }
        })
        .expect("scan");
        s.tables.insert(t.name, table);
    }
    s
}

impl RowSource for GenVault {
    fn schema(&self) -> syncfabric_vault::Result<Vec<TableSchema>> {
        Ok(vec![
            TableSchema {
                name: "item".into(),
                columns: cols(ITEM_COLS),
                key_columns: cols(&["uuid"]),
            },
            TableSchema {
                name: "itemfield".into(),
                columns: cols(FIELD_COLS),
                key_columns: cols(&["item_uuid", "item_field_uid"]),
            },
        ])
    }

    fn scan(
        &self,
        table: &str,
        f: &mut dyn FnMut(&mut dyn RowCursor),
    ) -> syncfabric_vault::Result<()> {
        let (width, keys) = match table {
            "item" => (ITEM_COLS.len(), 1),
            "itemfield" => (FIELD_COLS.len(), 2),
            _ => {
                f(&mut syncfabric_vault::EmptyCursor);
                return Ok(());
            }
        };
        let mut c = GenCursor {
            vault: *self,
            fields: table == "itemfield",
            next: 0,
            key: RowKey(vec![Value::Null; keys]),
            row: Row(vec![Value::Null; width]),
            valid: false,
        };
        c.constants();
        f(&mut c);
        Ok(())
    }
}

/// Generates one table's rows in key order into one buffer.
struct GenCursor {
    vault: GenVault,
    /// `itemfield` (else `item`).
    fields: bool,
    /// The next row's number: item `n`, or item `n / fields`, field `n % fields`.
    next: usize,
    key: RowKey,
    row: Row,
    valid: bool,
}

impl GenCursor {
    /// Writes the cells that are the same in every row, once: the buffer keeps them
    /// (every other cell is rewritten for each row).
    fn constants(&mut self) {
        let r = &mut self.row.0;
        if self.fields {
            for i in [8, 14, 21] {
                text(&mut r[i], &[]);
            }
        } else {
            for i in [6, 13, 19] {
                text(&mut r[i], &[]);
            }
            text(
                &mut r[7],
                &[S(
                    r#"{"fav":"","image":{"file":"misc/login"},"type":1,"uuid":""}"#,
                )],
            );
            text(&mut r[14], &[S("login")]);
            text(&mut r[15], &[S("login.default")]);
        }
    }

    fn item_row(&mut self, n: usize) {
        let r = &mut self.row.0;
        uuid(&mut r[0], n);
        int(&mut r[1], T0);
        int(&mut r[2], T0);
        int(&mut r[3], T0);
        text(&mut r[4], &[S("Item "), Dec(n as i64)]);
        text(&mut r[5], &[S("user"), Dec(n as i64)]);
        for (i, v) in [(8, 0), (9, 0), (10, 0), (11, 0), (12, 1)] {
            int(&mut r[i], v);
        }
        for v in &mut r[16..19] {
            int(v, 0);
        }
        int(&mut r[20], T0);
        if let Some(e) = self.vault.edit.filter(|e| (e.pick)(n)) {
            text(
                &mut r[4],
                &[S("Item "), Dec(n as i64), S(" ("), S(e.tag), S(")")],
            );
            int(&mut r[2], e.at);
            int(&mut r[3], e.at);
            int(&mut r[20], e.at);
        }
        self.key.0[0].clone_from(&r[0]);
    }

    fn field_row(&mut self, n: usize, f: usize) {
        let r = &mut self.row.0;
        // The fields of one item are consecutive: its uuid is written once.
        let new_item = f == 0 || !self.valid;
        if new_item {
            uuid(&mut r[0], n);
        }
        int(&mut r[1], 10 + f as i64);
        text(&mut r[2], &[S("Field "), Dec(f as i64)]);
        text(
            &mut r[3],
            &[S("value-"), Dec(n as i64), S("-"), Dec(f as i64)],
        );
        int(&mut r[4], 0);
        int(&mut r[5], (f == 1) as i64);
        int(&mut r[6], 1);
        text(&mut r[7], &[S(if f == 1 { "password" } else { "text" })]);
        int(&mut r[9], T0);
        int(&mut r[10], T0);
        int(&mut r[11], f as i64);
        int(&mut r[12], 0);
        text(&mut r[13], &[]);
        text(
            &mut r[15],
            &[S("h:value-"), Dec(n as i64), S("-"), Dec(f as i64)],
        );
        int(&mut r[16], -1);
        int(&mut r[17], 1);
        for v in &mut r[18..21] {
            int(v, 0);
        }
        if let Some(e) = self.vault.edit.filter(|e| f == 1 && (e.pick)(n)) {
            text(
                &mut r[13],
                &[
                    S(r#"[{"updated_at":"#),
                    Dec(T0),
                    S(r#","value":"value-"#),
                    Dec(n as i64),
                    S("-"),
                    Dec(f as i64),
                    S(r#""}]"#),
                ],
            );
            text(&mut r[15], &[S("h:"), S(e.tag), S("-"), Dec(n as i64)]);
            text(&mut r[3], &[S(e.tag), S("-"), Dec(n as i64)]);
            int(&mut r[9], e.at);
            int(&mut r[10], e.at);
        }
        if new_item {
            self.key.0[0].clone_from(&r[0]);
        }
        self.key.0[1].clone_from(&r[1]);
    }
}

impl RowCursor for GenCursor {
    fn advance(&mut self) -> syncfabric_vault::Result<bool> {
        let v = self.vault;
        let total = if self.fields {
            v.items * v.fields
        } else {
            v.items
        };
        if self.next >= total {
            self.valid = false;
            return Ok(false);
        }
        let n = self.next;
        self.next += 1;
        if self.fields {
            self.field_row(n / v.fields, n % v.fields);
        } else {
            self.item_row(n);
        }
        self.valid = true;
        Ok(true)
    }

    fn current(&self) -> Option<(&RowKey, &Row)> {
        self.valid.then_some((&self.key, &self.row))
    }
}
