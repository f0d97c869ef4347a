//! Whether one copy of a vault can descend from another: what a merge needs to know
//! before it takes a base for the common ancestor of a copy written by a client that
//! commits without conditions (an Enpass app writing its sync file over ours).

use crate::history::history_values;
use syncfabric_vault::{Row, RowCursor, RowKey, RowSource, TableSchema, Value};

/// Whether `newer` holds every row of `base` either unchanged or changed later: for
/// each row of `base`, `newer` has the row, and its `updated_at` is later than the
/// base row's, or equal with every column the two share equal (rows of tables without
/// an `updated_at` column must be equal). Rows are never removed and clocks only move
/// forward in every write and merge, so a copy that descends from `base` passes; a copy
/// merged before `base` was committed and written over it fails wherever `base` has a
/// row it lacks, a later value of a row, or, within one second of clock, another
/// content of a row. Reads both sources once, in key order.
pub fn descends_from(
    base: &dyn RowSource,
    newer: &dyn RowSource,
) -> syncfabric_vault::Result<bool> {
    let theirs = newer.schema()?;
    for table in base.schema()? {
        let Some(other) = theirs.iter().find(|t| t.name == table.name) else {
            // A table the newer copy lacks: descends only if the base's is empty.
            let mut empty = true;
            base.scan(&table.name, &mut |c| {
                empty = !matches!(c.advance(), Ok(true))
            })?;
            if !empty {
                return Ok(false);
            }
            continue;
        };
        if !table_descends(base, newer, &table, other)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Column positions shared by two schemas, and where `updated_at` (and, in a table of
/// field values, `value` and `history`) is in each.
struct Pairs {
    shared: Vec<(usize, usize)>,
    clock: Option<(usize, usize)>,
    value: Option<(usize, usize)>,
    history: Option<(usize, usize)>,
}

fn pairs(a: &TableSchema, b: &TableSchema) -> Pairs {
    let pos = |s: &TableSchema, c: &str| s.columns.iter().position(|x| x == c);
    let shared = a
        .columns
        .iter()
        .enumerate()
        .filter_map(|(i, c)| pos(b, c).map(|j| (i, j)))
        .collect();
    let both = |c: &str| pos(a, c).zip(pos(b, c));
    Pairs {
        shared,
        clock: both("updated_at"),
        value: both("value"),
        history: both("history"),
    }
}

fn table_descends(
    base: &dyn RowSource,
    newer: &dyn RowSource,
    a: &TableSchema,
    b: &TableSchema,
) -> syncfabric_vault::Result<bool> {
    let p = pairs(a, b);
    let mut ok = true;
    let mut err = None;
    base.scan(&a.name, &mut |bc| {
        let r = newer.scan(&b.name, &mut |nc| match walk(bc, nc, &p) {
            Ok(v) => ok = v,
            Err(e) => err = Some(e),
        });
        if let Err(e) = r {
            err = Some(e);
        }
    })?;
    match err {
        Some(e) => Err(e),
        None => Ok(ok),
    }
}

/// Walks both cursors in key order; false at the first base row `newer` does not hold
/// unchanged or later.
fn walk(
    bc: &mut dyn RowCursor,
    nc: &mut dyn RowCursor,
    p: &Pairs,
) -> syncfabric_vault::Result<bool> {
    let mut have_newer = nc.advance()?;
    while bc.advance()? {
        let Some((bk, br)) = bc.current() else {
            break;
        };
        let bk: RowKey = bk.clone();
        // Skip the newer copy's rows before this key (rows only it has are fine).
        while have_newer && nc.current().is_some_and(|(nk, _)| *nk < bk) {
            have_newer = nc.advance()?;
        }
        match nc.current() {
            Some((nk, nr)) if *nk == bk => {
                if !row_descends(br, nr, p) {
                    return Ok(false);
                }
            }
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// A base row is held by the newer copy when its clock is not older and:
/// - for a field value (a table with `value` and `history`): the newer row holds the
///   base's value, live or in its history, and every value of the base's history. A
///   later clock alone proves nothing here: an edit made on a copy that never had our
///   value carries a later clock and drops our value (seen: the never-lose run over
///   Apache in the Enpass layout lost a value that way). Every edit of a copy that had
///   our value keeps it in the history.
/// - for any other row: its clock is later, or equal with the same content.
fn row_descends(base: &Row, newer: &Row, p: &Pairs) -> bool {
    let at = |r: &Row, i: usize| match r.0.get(i) {
        Some(Value::Integer(t)) => *t,
        _ => 0,
    };
    let clock = p.clock.map(|(i, j)| (at(base, i), at(newer, j)));
    if clock.is_some_and(|(tb, tn)| tn < tb) {
        return false;
    }
    if let (Some((vi, vj)), Some((hi, hj))) = (p.value, p.history) {
        let cell = |r: &Row, i: usize| r.0.get(i).cloned().unwrap_or(Value::Null);
        let (bv, nv) = (cell(base, vi), cell(newer, vj));
        let newer_history = history_values(&cell(newer, hj));
        let holds = |v: &Value| match v {
            Value::Text(t) => t.is_empty() || newer_history.iter().any(|h| h == t),
            Value::Null => true,
            _ => false,
        };
        return (bv == nv || holds(&bv))
            && history_values(&cell(base, hi))
                .iter()
                .all(|h| newer_history.contains(h));
    }
    if clock.is_some_and(|(tb, tn)| tn > tb) {
        return true;
    }
    p.shared
        .iter()
        .all(|&(i, j)| base.0.get(i) == newer.0.get(j))
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncfabric_vault::{Snapshot, Table};

    fn snap(rows: &[(&str, i64, &str)]) -> Snapshot {
        let mut t = Table::new(
            vec!["uuid".into(), "updated_at".into(), "title".into()],
            vec!["uuid".into()],
        );
        for (u, at, title) in rows {
            t.rows.insert(
                RowKey(vec![Value::Text((*u).into())]),
                Row(vec![
                    Value::Text((*u).into()),
                    Value::Integer(*at),
                    Value::Text((*title).into()),
                ]),
            );
        }
        let mut s = Snapshot::default();
        s.tables.insert("item".into(), t);
        s
    }

    #[test]
    fn later_or_unchanged_rows_descend_and_nothing_else_does() {
        let base = snap(&[("a", 10, "A"), ("b", 10, "B")]);
        let yes = [
            snap(&[("a", 10, "A"), ("b", 10, "B")]),
            snap(&[("a", 11, "A2"), ("b", 10, "B"), ("c", 1, "new")]),
            snap(&[("0", 1, "first"), ("a", 10, "A"), ("b", 12, "B")]),
        ];
        for s in &yes {
            assert!(descends_from(&base, s).unwrap());
        }
        let no = [
            snap(&[("a", 10, "A")]),                  // a row gone
            snap(&[("a", 9, "A"), ("b", 10, "B")]),   // an older clock
            snap(&[("a", 10, "A*"), ("b", 10, "B")]), // same second, other content
            Snapshot::default(),                      // the table gone
        ];
        for s in &no {
            assert!(!descends_from(&base, s).unwrap());
        }
        assert!(descends_from(&Snapshot::default(), &base).unwrap());
    }

    fn field(value: &str, history: &[&str]) -> Snapshot {
        let mut t = Table::new(
            vec![
                "item_uuid".into(),
                "updated_at".into(),
                "value".into(),
                "history".into(),
            ],
            vec!["item_uuid".into()],
        );
        let h: Vec<String> = history
            .iter()
            .map(|v| format!(r#"{{"updated_at":1,"value":"{v}"}}"#))
            .collect();
        t.rows.insert(
            RowKey(vec![Value::Text("i".into())]),
            Row(vec![
                Value::Text("i".into()),
                Value::Integer(10),
                Value::Text(value.into()),
                Value::Text(format!("[{}]", h.join(","))),
            ]),
        );
        let mut s = Snapshot::default();
        s.tables.insert("itemfield".into(), t);
        s
    }

    #[test]
    fn within_one_second_a_later_edit_holds_the_base_value_in_its_history() {
        let base = field("v1", &["v0"]);
        // Edited again in the same second: v1 went to the history.
        assert!(descends_from(&base, &field("v2", &["v0", "v1"])).unwrap());
        // A copy from before the base, written over it in the same second.
        assert!(!descends_from(&base, &field("v0", &[])).unwrap());
        assert!(
            !descends_from(&base, &field("v2", &["v1"])).unwrap(),
            "v0 dropped"
        );
    }

    /// An edit made later on a copy that never had our value: a later clock, but our
    /// value is neither live nor in its history.
    #[test]
    fn a_later_edit_of_a_copy_without_our_value_does_not_descend() {
        let later = |value: &str, history: &[&str]| {
            let mut s = field(value, history);
            for r in s.tables.get_mut("itemfield").unwrap().rows.values_mut() {
                r.0[1] = Value::Integer(99);
            }
            s
        };
        let base = field("ours", &["old"]);
        assert!(!descends_from(&base, &later("theirs", &["old"])).unwrap());
        assert!(descends_from(&base, &later("theirs", &["old", "ours"])).unwrap());
    }
}
