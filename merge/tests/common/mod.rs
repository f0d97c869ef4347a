//! Test fixtures: snapshots with the real Enpass 6 schema (as read from
//! testdata/enpass-2020 with sqlcipher: every table and column in database
//! order, minus the local `ID` rowid and `item.key`, as the vault crate's snapshot
//! leaves them out), and edits that behave like the Enpass app.
#![allow(dead_code)]

use syncfabric_merge::{Row, RowKey, Snapshot, Table, Value};

/// (table, columns, key columns) of the real schema.
pub const SCHEMA: &[(&str, &[&str], &[&str])] = &[
    (
        "item",
        &[
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
        ],
        &["uuid"],
    ),
    (
        "itemfield",
        &[
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
        ],
        &["item_uuid", "item_field_uid"],
    ),
    (
        "folder",
        &[
            "uuid",
            "title",
            "icon",
            "updated_at",
            "deleted",
            "parent_uuid",
            "extra",
        ],
        &["uuid"],
    ),
    (
        "folder_items",
        &["folder_uuid", "item_uuid", "updated_at", "deleted", "extra"],
        &["folder_uuid", "item_uuid"],
    ),
    (
        "attachment",
        &[
            "uuid",
            "item_uuid",
            "name",
            "size",
            "orde",
            "mime",
            "updated_at",
            "created_at",
            "deleted",
            "internal",
            "password",
            "data",
            "extra",
        ],
        &["uuid"],
    ),
    (
        "custom_icon",
        &["uuid", "data", "updated_at", "deleted", "type", "extra"],
        &["uuid"],
    ),
    (
        "template",
        &[
            "uuid",
            "title",
            "cateogry_uuid",
            "icon",
            "field_json",
            "updated_at",
            "deleted",
            "extra",
        ],
        &["uuid"],
    ),
    (
        "category",
        &["uuid", "title", "icon", "updated_at", "deleted", "extra"],
        &["uuid"],
    ),
    (
        "password_history",
        &[
            "uuid",
            "password",
            "created_at",
            "domain",
            "deleted",
            "extra",
        ],
        &["uuid"],
    ),
    (
        "share_info",
        &["uuid", "title", "value", "updated_at", "deleted"],
        &["uuid"],
    ),
];

pub fn t(s: &str) -> Value {
    Value::Text(s.to_owned())
}
pub fn i(n: i64) -> Value {
    Value::Integer(n)
}

/// An empty snapshot with every table of the real schema.
pub fn empty() -> Snapshot {
    let mut s = Snapshot::default();
    for (name, cols, keys) in SCHEMA {
        s.tables.insert(
            (*name).to_owned(),
            Table::new(
                cols.iter().map(|c| (*c).to_owned()).collect(),
                keys.iter().map(|c| (*c).to_owned()).collect(),
            ),
        );
    }
    s
}

fn default_for(col: &str) -> Value {
    match col {
        "created_at" | "meta_updated_at" | "field_updated_at" | "favorite" | "trashed"
        | "archived" | "deleted" | "wearable" | "usage_count" | "last_used" | "sensitive"
        | "historical" | "updated_at" | "value_updated_at" | "orde" | "algo_version" | "expiry"
        | "excluded" | "pwned_check_time" | "size" | "internal" | "type_int" => i(0),
        "auto_submit" => i(1),
        "strength" => i(-1),
        _ => t(""),
    }
}

/// Inserts (or replaces) a row of `table` built from defaults and `values`.
pub fn put(s: &mut Snapshot, table: &str, values: &[(&str, Value)]) -> RowKey {
    let tb = s.tables.get_mut(table).expect("table in fixture schema");
    let row = Row(tb
        .columns
        .iter()
        .map(|c| {
            values
                .iter()
                .find(|(n, _)| n == c)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| default_for(c))
        })
        .collect());
    let key = RowKey(
        tb.key_columns
            .iter()
            .map(|k| row.0[tb.column_index(k).unwrap()].clone())
            .collect(),
    );
    tb.rows.insert(key.clone(), row);
    key
}

pub fn get(s: &Snapshot, table: &str, key: &RowKey, col: &str) -> Value {
    let tb = s.table(table).expect("table");
    let row = tb.rows.get(key).expect("row");
    tb.get(row, col).expect("column").clone()
}

pub fn has(s: &Snapshot, table: &str, key: &RowKey) -> bool {
    s.table(table).is_some_and(|tb| tb.rows.contains_key(key))
}

/// Sets columns of an existing row (no clock change).
pub fn set(s: &mut Snapshot, table: &str, key: &RowKey, values: &[(&str, Value)]) {
    let tb = s.tables.get_mut(table).expect("table");
    let idx: Vec<(usize, Value)> = values
        .iter()
        .map(|(c, v)| (tb.column_index(c).expect("column"), v.clone()))
        .collect();
    let row = tb.rows.get_mut(key).expect("row");
    for (n, v) in idx {
        row.0[n] = v;
    }
}

pub fn item_key(uuid: &str) -> RowKey {
    RowKey(vec![t(uuid)])
}
pub fn field_key(item: &str, uid: i64) -> RowKey {
    RowKey(vec![t(item), i(uid)])
}
pub fn fi_key(folder: &str, item: &str) -> RowKey {
    RowKey(vec![t(folder), t(item)])
}

/// A login item like the one in the real vault: username (uid 10), password (uid 11).
pub fn add_login(s: &mut Snapshot, uuid: &str, title: &str, user: &str, pass: &str, at: i64) {
    put(
        s,
        "item",
        &[
            ("uuid", t(uuid)),
            ("created_at", i(at)),
            ("meta_updated_at", i(at)),
            ("field_updated_at", i(at)),
            ("title", t(title)),
            ("subtitle", t(user)),
            ("category", t("login")),
            ("template", t("login.default")),
            ("updated_at", i(at)),
        ],
    );
    add_field(s, uuid, 10, "Username", "username", user, at);
    add_field(s, uuid, 11, "Password", "password", pass, at);
}

pub fn add_field(
    s: &mut Snapshot,
    item: &str,
    uid: i64,
    label: &str,
    ty: &str,
    value: &str,
    at: i64,
) {
    put(
        s,
        "itemfield",
        &[
            ("item_uuid", t(item)),
            ("item_field_uid", i(uid)),
            ("label", t(label)),
            ("value", t(value)),
            ("sensitive", i((ty == "password") as i64)),
            ("historical", i(1)),
            ("type", t(ty)),
            ("updated_at", i(at)),
            ("value_updated_at", i(at)),
            ("orde", i(uid)),
            ("hash", t(&hash(value))),
            ("algo_version", i(1)),
        ],
    );
}

/// A stand-in for the SHA-1 `hash` column: derived from the value, so a test can
/// check that `hash` always travels with `value`.
pub fn hash(value: &str) -> String {
    format!("h:{value}")
}

/// An edit of item meta columns, as the app does it (bumps the clocks).
pub fn edit_item(s: &mut Snapshot, uuid: &str, values: &[(&str, Value)], at: i64) {
    let k = item_key(uuid);
    set(s, "item", &k, values);
    set(
        s,
        "item",
        &k,
        &[("meta_updated_at", i(at)), ("updated_at", i(at))],
    );
}

/// A field value edit, as the app does it: the old value goes to the history.
pub fn edit_field(s: &mut Snapshot, item: &str, uid: i64, value: &str, at: i64) {
    let k = field_key(item, uid);
    let old = get(s, "itemfield", &k, "value");
    let old_at = get(s, "itemfield", &k, "value_updated_at")
        .as_i64()
        .unwrap_or(0);
    let hist = get(s, "itemfield", &k, "history");
    let mut entries: Vec<serde_json::Value> = match hist.as_str() {
        Some(h) if !h.is_empty() => serde_json::from_str(h).expect("history json"),
        _ => Vec::new(),
    };
    if let Some(o) = old.as_str().filter(|o| !o.is_empty()) {
        entries.push(serde_json::json!({"updated_at": old_at, "value": o}));
    }
    let hist = serde_json::to_string(&entries).expect("json");
    set(
        s,
        "itemfield",
        &k,
        &[
            ("value", t(value)),
            ("hash", t(&hash(value))),
            ("history", t(&hist)),
            ("updated_at", i(at)),
            ("value_updated_at", i(at)),
        ],
    );
    set(
        s,
        "item",
        &item_key(item),
        &[("field_updated_at", i(at)), ("updated_at", i(at))],
    );
}

/// Deletes an item as the app does: tombstone, and its folder memberships tombstoned.
pub fn delete_item(s: &mut Snapshot, uuid: &str, at: i64) {
    set(
        s,
        "item",
        &item_key(uuid),
        &[("deleted", i(1)), ("updated_at", i(at))],
    );
    let keys: Vec<RowKey> = s.tables["folder_items"]
        .rows
        .keys()
        .filter(|k| k.0[1] == t(uuid))
        .cloned()
        .collect();
    for k in keys {
        set(
            s,
            "folder_items",
            &k,
            &[("deleted", i(1)), ("updated_at", i(at))],
        );
    }
}

/// Moves an item into `folder`: other memberships tombstoned, this one live.
pub fn move_item(s: &mut Snapshot, uuid: &str, folder: &str, at: i64) {
    let keys: Vec<RowKey> = s.tables["folder_items"]
        .rows
        .keys()
        .filter(|k| k.0[1] == t(uuid))
        .cloned()
        .collect();
    for k in keys {
        if k.0[0] != t(folder) {
            set(
                s,
                "folder_items",
                &k,
                &[("deleted", i(1)), ("updated_at", i(at))],
            );
        }
    }
    put(
        s,
        "folder_items",
        &[
            ("folder_uuid", t(folder)),
            ("item_uuid", t(uuid)),
            ("updated_at", i(at)),
        ],
    );
}

/// The values of a field's history.
pub fn history_of(s: &Snapshot, item: &str, uid: i64) -> Vec<String> {
    syncfabric_merge::history_values(&get(s, "itemfield", &field_key(item, uid), "history"))
}

/// The merged content of an outcome that kept it (`merge` always does).
pub trait Merged {
    /// `outcome.merged`, which `merge` always fills.
    fn m(&self) -> &Snapshot;
}

impl Merged for syncfabric_merge::MergeOutcome {
    fn m(&self) -> &Snapshot {
        self.merged
            .as_ref()
            .expect("merge keeps the merged content")
    }
}
