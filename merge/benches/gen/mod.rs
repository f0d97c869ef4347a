//! Synthetic vaults for the benchmark and the peak-memory example: `items` items with
//! `fields` fields each, in the real Enpass schema (see tests/common), and two sides
//! that each edited a share of the items (a title and one field value, the old value
//! moved to the field's history as the app does).

use syncfabric_merge::{Row, RowKey, Snapshot, Table, Value};

const T0: i64 = 1_600_000_000;

fn t(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}
fn i(n: i64) -> Value {
    Value::Integer(n)
}
fn cols(c: &[&str]) -> Vec<String> {
    c.iter().map(|s| (*s).to_owned()).collect()
}

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

fn uuid(n: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", n, n * 7919)
}

fn item_row(n: usize) -> Row {
    Row(vec![
        t(uuid(n)),
        i(T0),
        i(T0),
        i(T0),
        t(format!("Item {n}")),
        t(format!("user{n}")),
        t(""),
        t(r#"{"fav":"","image":{"file":"misc/login"},"type":1,"uuid":""}"#),
        i(0),
        i(0),
        i(0),
        i(0),
        i(1),
        t(""),
        t("login"),
        t("login.default"),
        i(0),
        i(0),
        i(0),
        t(""),
        i(T0),
    ])
}

fn field_row(n: usize, f: usize) -> Row {
    let value = format!("value-{n}-{f}");
    Row(vec![
        t(uuid(n)),
        i(10 + f as i64),
        t(format!("Field {f}")),
        t(value.clone()),
        i(0),
        i((f == 1) as i64),
        i(1),
        t(if f == 1 { "password" } else { "text" }),
        t(""),
        i(T0),
        i(T0),
        i(f as i64),
        i(0),
        t(""),
        t(""),
        t(format!("h:{value}")),
        i(-1),
        i(1),
        i(0),
        i(0),
        i(0),
        t(""),
    ])
}

/// The common ancestor: `items` live items with `fields` fields each.
pub fn base(items: usize, fields: usize) -> Snapshot {
    let mut s = Snapshot::default();
    let mut it = Table::new(cols(ITEM_COLS), cols(&["uuid"]));
    let mut ft = Table::new(cols(FIELD_COLS), cols(&["item_uuid", "item_field_uid"]));
    it.rows = (0..items)
        .map(|n| (RowKey(vec![t(uuid(n))]), item_row(n)))
        .collect();
    ft.rows = (0..items)
        .flat_map(|n| {
            (0..fields).map(move |f| (RowKey(vec![t(uuid(n)), i(10 + f as i64)]), field_row(n, f)))
        })
        .collect();
    s.tables.insert("item".into(), it);
    s.tables.insert("itemfield".into(), ft);
    s
}

/// `base` with the items `pick` selects edited on this side at time `at`: title
/// changed, field 1 (the password) changed with its old value moved to history.
pub fn edited(base: &Snapshot, pick: impl Fn(usize) -> bool, tag: &str, at: i64) -> Snapshot {
    let mut s = base.clone();
    let items = s.tables["item"].rows.len();
    let it = s.tables.get_mut("item").expect("item table");
    for n in (0..items).filter(|&n| pick(n)) {
        if let Some(row) = it.rows.get_mut(&RowKey(vec![t(uuid(n))])) {
            row.0[4] = t(format!("Item {n} ({tag})"));
            row.0[2] = i(at);
            row.0[3] = i(at);
            row.0[20] = i(at);
        }
    }
    let ft = s.tables.get_mut("itemfield").expect("itemfield table");
    for n in (0..items).filter(|&n| pick(n)) {
        if let Some(row) = ft.rows.get_mut(&RowKey(vec![t(uuid(n)), i(11)])) {
            let old = row.0[3].as_str().unwrap_or_default().to_owned();
            let value = format!("{tag}-{n}");
            row.0[13] = t(format!(r#"[{{"updated_at":{T0},"value":"{old}"}}]"#));
            row.0[15] = t(format!("h:{value}"));
            row.0[3] = t(value);
            row.0[9] = i(at);
            row.0[10] = i(at);
        }
    }
    s
}

/// (base, local, remote): 10% of the items edited on each side, 1% of them on both.
pub fn scenario(items: usize, fields: usize) -> (Snapshot, Snapshot, Snapshot) {
    let b = base(items, fields);
    let l = edited(&b, |n| n % 10 == 0, "local", T0 + 100);
    let r = edited(
        &b,
        |n| (n % 10 == 5 && n % 100 != 5) || n % 100 == 0,
        "remote",
        T0 + 200,
    );
    (b, l, r)
}
