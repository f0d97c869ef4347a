//! Per-table preparation: the merged column list, how each side's rows map onto it, and
//! the column groups the row merge resolves together.

use syncfabric_vault::{Row, TableSchema, Value};

use crate::MergeError;

/// Columns that describe one field value together: a conflict on any of them is
/// resolved for all of them from the same side (so `hash` always matches `value`).
const FIELD_VALUE_GROUP: &[&str] = &[
    "value",
    "hash",
    "initial",
    "strength",
    "algo_version",
    "pwned_check_time",
];

/// Columns that describe one blob payload together (attachments, custom icons).
const PAYLOAD_GROUP: &[&str] = &["data", "password", "size", "mime", "type", "internal"];

/// How a group of columns is merged.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum GroupKind {
    /// Ordinary columns: three-way, conflicts by the later row clock.
    Plain,
    /// The field value group of a table with a `history` column: like `Plain`, and the
    /// losing value is added to the history.
    FieldValue,
    /// A clock column (`updated_at`, `*_updated_at`): the maximum of both sides.
    Clock,
    /// The `deleted` tombstone flag: delete-vs-edit rule.
    Deleted,
    /// The `history` column of a table with a `value` column: set union.
    History,
}

/// A set of column positions (in the merged column list) merged as one unit.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub kind: GroupKind,
    pub cols: Vec<usize>,
}

/// Maps one side's rows onto the merged columns.
#[derive(Clone, Debug)]
pub(crate) enum Projection {
    /// The side has exactly the merged columns: rows are used as they are.
    Identity,
    /// For each merged column, the side's position of it (absent columns read as NULL).
    Map(Vec<Option<usize>>),
}

impl Projection {
    fn new(merged: &[String], side: &[String]) -> Projection {
        if merged == side {
            Projection::Identity
        } else {
            Projection::Map(
                merged
                    .iter()
                    .map(|c| side.iter().position(|s| s == c))
                    .collect(),
            )
        }
    }

    /// `row` seen through the merged columns, written into `out` (its buffers reused).
    /// The identity projection copies the row.
    pub(crate) fn project_into(&self, row: &Row, out: &mut Row) {
        match self {
            Projection::Identity => out.0.clone_from(&row.0),
            Projection::Map(map) => {
                out.0.resize(map.len(), Value::Null);
                for (slot, i) in out.0.iter_mut().zip(map) {
                    match i.and_then(|i| row.0.get(i)) {
                        Some(v) => slot.clone_from(v),
                        None => *slot = Value::Null,
                    }
                }
            }
        }
    }
}

/// Everything the row merge needs to know about one table.
#[derive(Debug)]
pub(crate) struct TablePlan {
    pub columns: Vec<String>,
    pub key_columns: Vec<String>,
    /// One projection per side: base, local, remote.
    pub proj: [Projection; 3],
    /// The row clock: `updated_at`.
    pub clock: Option<usize>,
    /// `value` and `history` when the table has field semantics (both present).
    pub field: Option<FieldCols>,
    pub groups: Vec<Group>,
}

/// Columns of a table with field semantics.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FieldCols {
    pub value: usize,
    pub history: usize,
    /// When the value was set: `value_updated_at`, else the row clock.
    pub value_time: Option<usize>,
}

fn is_clock(name: &str) -> bool {
    name == "updated_at" || name.ends_with("_updated_at")
}

impl TablePlan {
    /// Plans the merge of one table present on at least one side.
    pub(crate) fn new(
        name: &str,
        sides: [Option<&TableSchema>; 3],
    ) -> Result<TablePlan, MergeError> {
        let present: Vec<&TableSchema> = sides.iter().flatten().copied().collect();
        let first = present.first().ok_or_else(|| MergeError::MalformedTable {
            table: name.to_owned(),
        })?;
        for t in &present {
            if t.key_columns != first.key_columns {
                return Err(MergeError::KeyMismatch {
                    table: name.to_owned(),
                });
            }
            for k in &t.key_columns {
                if !t.columns.contains(k) {
                    return Err(MergeError::MissingKeyColumn {
                        table: name.to_owned(),
                        column: k.clone(),
                    });
                }
            }
        }
        // Column order: the greatest column list (by length, then lexicographically) is
        // the spine, other sides' extra columns follow in name order. Symmetric in
        // local/remote, and the identity in the usual case of equal lists.
        let spine = present
            .iter()
            .map(|t| &t.columns)
            .max_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)))
            .cloned()
            .unwrap_or_default();
        let mut extras: Vec<String> = present
            .iter()
            .flat_map(|t| t.columns.iter())
            .filter(|c| !spine.contains(c))
            .cloned()
            .collect();
        extras.sort();
        extras.dedup();
        let mut columns = spine;
        columns.extend(extras);

        let proj = sides.map(|s| match s {
            Some(t) => Projection::new(&columns, &t.columns),
            None => Projection::Identity,
        });
        let pos = |c: &str| columns.iter().position(|x| x == c);
        let clock = pos("updated_at");
        let field = match (pos("value"), pos("history")) {
            (Some(value), Some(history)) => Some(FieldCols {
                value,
                history,
                value_time: pos("value_updated_at").or(clock),
            }),
            _ => None,
        };

        let keyed: Vec<usize> = first.key_columns.iter().filter_map(|k| pos(k)).collect();
        let mut used = vec![false; columns.len()];
        for &k in &keyed {
            used[k] = true;
        }
        let mut groups = Vec::new();
        let mut take_group = |names: &[&str], kind: GroupKind, used: &mut Vec<bool>| {
            let cols: Vec<usize> = names
                .iter()
                .filter_map(|n| pos(n))
                .filter(|&i| !used[i])
                .collect();
            if !cols.is_empty() {
                for &i in &cols {
                    used[i] = true;
                }
                groups.push(Group { kind, cols });
            }
        };
        if field.is_some() {
            take_group(FIELD_VALUE_GROUP, GroupKind::FieldValue, &mut used);
            take_group(&["history"], GroupKind::History, &mut used);
        } else if pos("value").is_some() {
            take_group(FIELD_VALUE_GROUP, GroupKind::Plain, &mut used);
        }
        if pos("data").is_some() {
            take_group(PAYLOAD_GROUP, GroupKind::Plain, &mut used);
        }
        take_group(&["deleted"], GroupKind::Deleted, &mut used);
        for (i, c) in columns.iter().enumerate() {
            if !used[i] {
                let kind = if is_clock(c) {
                    GroupKind::Clock
                } else {
                    GroupKind::Plain
                };
                groups.push(Group {
                    kind,
                    cols: vec![i],
                });
            }
        }
        Ok(TablePlan {
            columns,
            key_columns: first.key_columns.clone(),
            proj,
            clock,
            field,
            groups,
        })
    }
}
