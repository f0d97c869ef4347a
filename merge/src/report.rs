//! The human-readable merge report. It names rows by item title, field label, folder
//! title and attachment name, and changes by column name; it never contains a value
//! (no password, note, field value, history or blob).

use std::collections::BTreeMap;
use std::fmt;

use syncfabric_vault::{Row, RowKey, Snapshot, Table, Value};

use crate::engine::Counts;
use crate::{Conflict, Deletion, Side, Winner};

/// Rows per direction (and conflicts) described one by one; the rest are counted.
pub(crate) const DETAIL_LIMIT: usize = 100;

/// A row one side must write, kept for the report.
#[derive(Debug)]
pub(crate) struct Detail {
    pub table: String,
    pub key: RowKey,
    pub side: Side,
    pub added: bool,
    pub columns: Vec<String>,
}

/// What the merge did to one table, in row counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSummary {
    /// The table name.
    pub table: String,
    /// Rows the local side lacked and must insert.
    pub local_added: usize,
    /// Rows the local side holds and must update.
    pub local_updated: usize,
    /// Rows the remote side lacked.
    pub remote_added: usize,
    /// Rows the remote side holds that differ from the merge.
    pub remote_updated: usize,
    /// Rows both sides changed in a way that needed a rule (see [`Conflict`]).
    pub conflicts: usize,
}

/// A report a person can read: per-table counts, then one line per changed row (the
/// first 100 per direction) and per conflict (the first 100). `Display` renders it.
/// Safe to log: it holds titles, labels and column names, never values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Tables where anything changed, by name.
    pub tables: Vec<TableSummary>,
    /// Lines describing rows written to the local side.
    pub local_lines: Vec<String>,
    /// Lines describing rows written to the remote side.
    pub remote_lines: Vec<String>,
    /// Lines describing how each conflict was resolved.
    pub conflict_lines: Vec<String>,
}

impl MergeReport {
    pub(crate) fn build(
        merged: &Snapshot,
        counts: BTreeMap<String, Counts>,
        details: Vec<Detail>,
        conflicts: &[Conflict],
    ) -> MergeReport {
        let mut report = MergeReport::default();
        for (table, c) in counts {
            if c == Counts::default() {
                continue;
            }
            report.tables.push(TableSummary {
                table,
                local_added: c.local_added,
                local_updated: c.local_updated,
                remote_added: c.remote_added,
                remote_updated: c.remote_updated,
                conflicts: c.conflicts,
            });
        }
        for d in details {
            let what = describe(merged, &d.table, &d.key);
            let line = if d.added {
                format!("new {what}")
            } else {
                format!("{what}: {} changed", d.columns.join(", "))
            };
            match d.side {
                Side::Local => report.local_lines.push(line),
                Side::Remote => report.remote_lines.push(line),
            }
        }
        for c in conflicts.iter().take(DETAIL_LIMIT) {
            report.conflict_lines.push(describe_conflict(merged, c));
        }
        if conflicts.len() > DETAIL_LIMIT {
            report.conflict_lines.push(format!(
                "... and {} more conflicts",
                conflicts.len() - DETAIL_LIMIT
            ));
        }
        report
    }

    /// Whether the merge changed nothing on either side.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

fn side_name(s: Side) -> &'static str {
    match s {
        Side::Local => "local",
        Side::Remote => "remote",
    }
}

fn describe_conflict(merged: &Snapshot, c: &Conflict) -> String {
    let what = describe(merged, &c.table, &c.key);
    let mut parts = Vec::new();
    if !c.columns.is_empty() {
        let how = match c.winner {
            Winner::Local => "local's edit is later and won".to_owned(),
            Winner::Remote => "remote's edit is later and won".to_owned(),
            Winner::Tie => {
                "both edits carry the same time; the greater content won (deterministic)".to_owned()
            }
        };
        parts.push(format!(
            "both sides changed {}; {how}",
            c.columns.join(", ")
        ));
    }
    match c.loser_in_history {
        Some(true) => parts.push("the losing value is kept in the field's history".into()),
        Some(false) => parts.push(
            "the losing value could NOT be kept in history (history is not a JSON list)".into(),
        ),
        None => {}
    }
    match c.deletion {
        Some(Deletion::Revived { deleted_by }) => parts.push(format!(
            "deleted on {}, edited later on {}: revived",
            side_name(deleted_by),
            side_name(deleted_by.other())
        )),
        Some(Deletion::StayedDeleted { deleted_by }) => parts.push(format!(
            "deleted on {}, edited on {} before the delete: stays deleted (the edit is kept in the deleted row)",
            side_name(deleted_by),
            side_name(deleted_by.other())
        )),
        None => {}
    }
    format!("{what}: {}", parts.join("; "))
}

fn text<'a>(t: &Table, row: &'a Row, col: &str) -> Option<&'a str> {
    t.get(row, col)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn title_of(merged: &Snapshot, table: &str, uuid: Option<&str>) -> Option<String> {
    let uuid = uuid?;
    let t = merged.table(table)?;
    let row = t.rows.get(&RowKey(vec![Value::Text(uuid.to_owned())]))?;
    text(t, row, "title").map(|s| format!("{s:?}"))
}

/// Names a row by what a person sees, never by a secret value.
fn describe(merged: &Snapshot, table: &str, key: &RowKey) -> String {
    let found = merged
        .table(table)
        .and_then(|t| t.rows.get(key).map(|r| (t, r)));
    let Some((t, row)) = found else {
        return format!("{table} row {}", key_text(key));
    };
    let item = |col: &str| {
        title_of(merged, "item", text(t, row, col))
            .map(|s| format!("item {s}"))
            .or_else(|| text(t, row, col).map(|u| format!("item {u}")))
            .unwrap_or_else(|| "an unknown item".into())
    };
    match table {
        "item" => format!(
            "item {}",
            text(t, row, "title").map_or_else(|| key_text(key), |s| format!("{s:?}"))
        ),
        "itemfield" => {
            let label = text(t, row, "label")
                .or_else(|| text(t, row, "type"))
                .unwrap_or("field");
            format!("field {label:?} of {}", item("item_uuid"))
        }
        "folder" => format!(
            "folder {}",
            text(t, row, "title").map_or_else(|| key_text(key), |s| format!("{s:?}"))
        ),
        "folder_items" => {
            let folder = title_of(merged, "folder", text(t, row, "folder_uuid"))
                .unwrap_or_else(|| text(t, row, "folder_uuid").unwrap_or("?").to_owned());
            format!("{} in folder {folder}", item("item_uuid"))
        }
        "attachment" => {
            let name = text(t, row, "name").unwrap_or("attachment");
            format!("attachment {name:?} of {}", item("item_uuid"))
        }
        _ => match text(t, row, "title") {
            Some(s) => format!("{table} {s:?}"),
            None => format!("{table} row {}", key_text(key)),
        },
    }
}

/// A row key for people: integers and short text as they are, the rest by size.
fn key_text(key: &RowKey) -> String {
    let parts: Vec<String> = key
        .0
        .iter()
        .map(|v| match v {
            Value::Null => "NULL".into(),
            Value::Integer(i) => i.to_string(),
            Value::Real(r) => r.to_string(),
            Value::Text(t) if t.chars().count() <= 64 => format!("{t:?}"),
            Value::Text(t) => format!("<{} bytes of text>", t.len()),
            Value::Blob(b) => format!("<{} bytes>", b.len()),
        })
        .collect();
    format!("({})", parts.join(", "))
}

impl fmt::Display for MergeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tables.is_empty() {
            return writeln!(f, "nothing to merge: both sides hold the same content");
        }
        writeln!(f, "merge summary (rows written per side):")?;
        for t in &self.tables {
            writeln!(
                f,
                "  {}: local {} new, {} updated; remote {} new, {} updated; {} conflicts",
                t.table,
                t.local_added,
                t.local_updated,
                t.remote_added,
                t.remote_updated,
                t.conflicts
            )?;
        }
        let local_total: usize = self
            .tables
            .iter()
            .map(|t| t.local_added + t.local_updated)
            .sum();
        let remote_total: usize = self
            .tables
            .iter()
            .map(|t| t.remote_added + t.remote_updated)
            .sum();
        for (title, lines, total) in [
            ("written locally", &self.local_lines, local_total),
            ("written to the remote", &self.remote_lines, remote_total),
        ] {
            if lines.is_empty() {
                continue;
            }
            writeln!(f, "{title}:")?;
            for l in lines {
                writeln!(f, "  {l}")?;
            }
            if total > lines.len() {
                writeln!(f, "  ... and {} more rows", total - lines.len())?;
            }
        }
        if !self.conflict_lines.is_empty() {
            writeln!(f, "conflicts:")?;
            for l in &self.conflict_lines {
                writeln!(f, "  {l}")?;
            }
        }
        Ok(())
    }
}
