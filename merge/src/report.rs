//! The human-readable merge report. It names rows by item title, field label, folder
//! title and attachment name, and changes by column name; it never contains a value
//! (no password, note, field value, history or blob).

use std::collections::BTreeMap;
use std::fmt;

use syncfabric_vault::{Row, RowKey, Value};

use crate::plan::TablePlan;
use crate::{Conflict, Deletion, Side, Winner};

/// Per-table counts for the report.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Counts {
    pub local_added: usize,
    pub local_updated: usize,
    pub remote_added: usize,
    pub remote_updated: usize,
    pub conflicts: usize,
}

/// Rows per direction (and conflicts) described one by one; the rest are counted.
pub(crate) const DETAIL_LIMIT: usize = 100;

/// A row one side must write, kept for the report.
#[derive(Debug)]
pub(crate) struct Detail {
    pub what: Descr,
    pub side: Side,
    pub added: bool,
    pub columns: Vec<String>,
}

/// How the report names a row: taken from the merged row when the row is met, with
/// the titles of the folder and item it belongs to filled in at the end (they are
/// merged last, see `engine::TITLE_TABLES`).
#[derive(Debug)]
pub(crate) enum Descr {
    /// Fully named.
    Done(String),
    /// `field <label> of <item>`.
    Field { label: String, item: Option<String> },
    /// `<item> in folder <folder>`.
    Membership {
        item: Option<String>,
        folder: Option<String>,
    },
    /// `attachment <name> of <item>`.
    Attachment { name: String, item: Option<String> },
}

/// The folder and item uuids the report names, and their titles once merged.
#[derive(Debug, Default)]
pub(crate) struct Needs {
    items: BTreeMap<String, Option<String>>,
    folders: BTreeMap<String, Option<String>>,
}

impl Needs {
    fn need(&mut self, item: bool, uuid: Option<&str>) -> Option<String> {
        let uuid = uuid?;
        let m = if item {
            &mut self.items
        } else {
            &mut self.folders
        };
        m.entry(uuid.to_owned()).or_insert(None);
        Some(uuid.to_owned())
    }

    /// The merged title of a folder or item, kept if the report names it.
    pub(crate) fn found(&mut self, item: bool, uuid: &str, title: &str) {
        let m = if item {
            &mut self.items
        } else {
            &mut self.folders
        };
        if let Some(slot) = m.get_mut(uuid) {
            *slot = Some(title.to_owned());
        }
    }

    fn title(&self, item: bool, uuid: &str) -> Option<String> {
        let m = if item { &self.items } else { &self.folders };
        m.get(uuid).cloned().flatten().map(|s| format!("{s:?}"))
    }

    fn item(&self, uuid: &Option<String>) -> String {
        match uuid {
            Some(u) => match self.title(true, u) {
                Some(t) => format!("item {t}"),
                None => format!("item {u}"),
            },
            None => "an unknown item".into(),
        }
    }
}

fn text<'a>(plan: &TablePlan, row: &'a Row, col: &str) -> Option<&'a str> {
    plan.columns
        .iter()
        .position(|c| c == col)
        .and_then(|i| row.0.get(i))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

impl Descr {
    /// Names a row by what a person sees, never by a secret value.
    pub(crate) fn of(
        table: &str,
        plan: &TablePlan,
        key: &RowKey,
        row: &Row,
        needs: &mut Needs,
    ) -> Descr {
        let t = |c: &str| text(plan, row, c);
        match table {
            "item" => Descr::Done(format!(
                "item {}",
                t("title").map_or_else(|| key_text(key), |s| format!("{s:?}"))
            )),
            "itemfield" => Descr::Field {
                label: t("label")
                    .or_else(|| t("type"))
                    .unwrap_or("field")
                    .to_owned(),
                item: needs.need(true, t("item_uuid")),
            },
            "folder" => Descr::Done(format!(
                "folder {}",
                t("title").map_or_else(|| key_text(key), |s| format!("{s:?}"))
            )),
            "folder_items" => Descr::Membership {
                item: needs.need(true, t("item_uuid")),
                folder: needs.need(false, t("folder_uuid")),
            },
            "attachment" => Descr::Attachment {
                name: t("name").unwrap_or("attachment").to_owned(),
                item: needs.need(true, t("item_uuid")),
            },
            _ => Descr::Done(match t("title") {
                Some(s) => format!("{table} {s:?}"),
                None => format!("{table} row {}", key_text(key)),
            }),
        }
    }

    fn render(&self, needs: &Needs) -> String {
        match self {
            Descr::Done(s) => s.clone(),
            Descr::Field { label, item } => format!("field {label:?} of {}", needs.item(item)),
            Descr::Membership { item, folder } => {
                let folder = match folder {
                    Some(f) => needs.title(false, f).unwrap_or_else(|| f.clone()),
                    None => "?".into(),
                };
                format!("{} in folder {folder}", needs.item(item))
            }
            Descr::Attachment { name, item } => {
                format!("attachment {name:?} of {}", needs.item(item))
            }
        }
    }
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
/// first 100 per direction) and per conflict (the first 100). Lines follow the merge's
/// walk: tables in name order, except `folder` and `item`, which come last (rows of
/// other tables are named by the title of their folder and item, known once those are
/// merged). `Display` renders it.
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
    /// `conflicts` in walk order, the first of them described by `descr`.
    pub(crate) fn build(
        counts: BTreeMap<String, Counts>,
        details: Vec<Detail>,
        conflicts: &[Conflict],
        descr: Vec<Descr>,
        needs: &Needs,
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
            let what = d.what.render(needs);
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
        for (c, what) in conflicts.iter().zip(descr) {
            report
                .conflict_lines
                .push(describe_conflict(&what.render(needs), c));
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

fn describe_conflict(what: &str, c: &Conflict) -> String {
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
