//! The lockstep walk over base, local and remote.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use syncfabric_vault::{Row, RowKey, Snapshot, Table};

use crate::plan::TablePlan;
use crate::report::{Detail, MergeReport};
use crate::row::{clocks_behind, merge_row, raise_clocks};
use crate::{Conflict, MergeError, MergeOutcome, Side};

type Rows<'a> = std::iter::Peekable<std::collections::btree_map::Iter<'a, RowKey, Row>>;

fn rows_of(t: Option<&Table>) -> Option<Rows<'_>> {
    t.map(|t| t.rows.iter().peekable())
}

fn next_key<'a>(its: &mut [Option<Rows<'a>>; 3]) -> Option<&'a RowKey> {
    let mut best: Option<&'a RowKey> = None;
    for it in its.iter_mut().flatten() {
        if let Some((k, _)) = it.peek() {
            let k: &'a RowKey = k;
            if best.is_none_or(|b| k < b) {
                best = Some(k);
            }
        }
    }
    best
}

fn take<'a>(it: &mut Option<Rows<'a>>, key: &RowKey) -> Option<&'a Row> {
    let it = it.as_mut()?;
    match it.peek() {
        Some((k, _)) if *k == key => it.next().map(|(_, r)| r),
        _ => None,
    }
}

/// See [`crate::merge`].
pub(crate) fn merge(
    base: Option<&Snapshot>,
    local: &Snapshot,
    remote: &Snapshot,
) -> Result<MergeOutcome, MergeError> {
    let mut names: BTreeSet<&String> = local.tables.keys().collect();
    names.extend(remote.tables.keys());
    if let Some(b) = base {
        names.extend(b.tables.keys());
    }

    let mut merged = Snapshot::default();
    let mut to_local = Snapshot::default();
    let mut to_remote = Snapshot::default();
    let mut conflicts = Vec::new();
    let mut details = Details::default();
    let mut counts = BTreeMap::new();

    for name in names {
        let sides = [
            base.and_then(|b| b.tables.get(name)),
            local.tables.get(name),
            remote.tables.get(name),
        ];
        let plan = TablePlan::new(name, sides)?;
        let mut out = TableOut::default();
        merge_table(name, &plan, sides, &mut out, &mut conflicts, &mut details)?;

        let schema_differs = |t: Option<&Table>| t.is_none_or(|t| t.columns != plan.columns);
        let mk = |rows: Vec<(RowKey, Row)>| Table {
            columns: plan.columns.clone(),
            key_columns: plan.key_columns.clone(),
            rows: rows.into_iter().collect(),
        };
        counts.insert(name.clone(), out.counts);
        if !out.to_local.is_empty() || schema_differs(sides[1]) {
            to_local.tables.insert(name.clone(), mk(out.to_local));
        }
        if !out.to_remote.is_empty() || schema_differs(sides[2]) {
            to_remote.tables.insert(name.clone(), mk(out.to_remote));
        }
        merged.tables.insert(name.clone(), mk(out.merged));
    }
    let report = MergeReport::build(&merged, counts, details.items, &conflicts);
    Ok(MergeOutcome {
        merged,
        to_local,
        to_remote,
        conflicts,
        report,
    })
}

/// Per-table counts for the report.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Counts {
    pub local_added: usize,
    pub local_updated: usize,
    pub remote_added: usize,
    pub remote_updated: usize,
    pub conflicts: usize,
}

/// The rows kept for the report's detail lines, and how many per side.
#[derive(Default)]
struct Details {
    items: Vec<Detail>,
    local: usize,
    remote: usize,
}

#[derive(Default)]
struct TableOut {
    merged: Vec<(RowKey, Row)>,
    to_local: Vec<(RowKey, Row)>,
    to_remote: Vec<(RowKey, Row)>,
    counts: Counts,
}

fn check(name: &str, t: Option<&Table>, key: &RowKey, row: Option<&Row>) -> Result<(), MergeError> {
    if let (Some(t), Some(row)) = (t, row) {
        if row.0.len() != t.columns.len() || key.0.len() != t.key_columns.len() {
            return Err(MergeError::MalformedRow {
                table: name.to_owned(),
            });
        }
    }
    Ok(())
}

fn merge_table(
    name: &str,
    plan: &TablePlan,
    sides: [Option<&Table>; 3],
    out: &mut TableOut,
    conflicts: &mut Vec<Conflict>,
    details: &mut Details,
) -> Result<(), MergeError> {
    let mut its = sides.map(rows_of);
    while let Some(key) = next_key(&mut its) {
        let b = take(&mut its[0], key);
        let l = take(&mut its[1], key);
        let r = take(&mut its[2], key);
        check(name, sides[0], key, b)?;
        check(name, sides[1], key, l)?;
        check(name, sides[2], key, r)?;
        let bp = b.map(|row| plan.proj[0].apply(row));
        let lp = l.map(|row| plan.proj[1].apply(row));
        let rp = r.map(|row| plan.proj[2].apply(row));
        // A row missing on one side but present in base is unchanged on that side.
        let le = lp.as_deref().or(bp.as_deref());
        let re = rp.as_deref().or(bp.as_deref());
        let merged: Cow<'_, Row> = match (le, re) {
            (Some(x), None) | (None, Some(x)) => Cow::Borrowed(x),
            (None, None) => continue,
            (Some(l), Some(r)) if l == r => Cow::Borrowed(l),
            (Some(l), Some(r)) if bp.as_deref() == Some(l) => one_side(plan, r, l),
            (Some(l), Some(r)) if bp.as_deref() == Some(r) => one_side(plan, l, r),
            (Some(l), Some(r)) => {
                let (row, c) = merge_row(plan, bp.as_deref(), l, r);
                if let Some(c) = c {
                    out.counts.conflicts += 1;
                    conflicts.push(Conflict {
                        table: name.to_owned(),
                        key: key.clone(),
                        columns: c.columns.iter().map(|&i| plan.columns[i].clone()).collect(),
                        winner: c.winner,
                        deletion: c.deletion,
                        loser_in_history: c.loser_in_history,
                    });
                }
                Cow::Owned(row)
            }
        };
        let local_stale = lp.as_deref() != Some(&*merged);
        let remote_stale = rp.as_deref() != Some(&*merged);
        if local_stale {
            note(
                plan,
                name,
                key,
                Side::Local,
                lp.as_deref(),
                &merged,
                &mut out.counts,
                details,
            );
            out.to_local
                .push((key.clone(), merged.clone().into_owned()));
        }
        if remote_stale {
            note(
                plan,
                name,
                key,
                Side::Remote,
                rp.as_deref(),
                &merged,
                &mut out.counts,
                details,
            );
            out.to_remote
                .push((key.clone(), merged.clone().into_owned()));
        }
        out.merged.push((key.clone(), merged.into_owned()));
    }
    Ok(())
}

/// The changed side's row, its clocks raised to the other side's so the merged row's
/// `updated_at` is never behind either side (clock skew).
fn one_side<'a>(plan: &TablePlan, changed: &'a Row, other: &Row) -> Cow<'a, Row> {
    if clocks_behind(plan, changed, other) {
        let mut row = changed.clone();
        raise_clocks(plan, &mut row, other);
        Cow::Owned(row)
    } else {
        Cow::Borrowed(changed)
    }
}

/// Counts a row a side must write, and keeps the first few for the report.
#[allow(clippy::too_many_arguments)]
fn note(
    plan: &TablePlan,
    table: &str,
    key: &RowKey,
    side: Side,
    before: Option<&Row>,
    after: &Row,
    counts: &mut Counts,
    details: &mut Details,
) {
    let n = match (side, before.is_some()) {
        (Side::Local, false) => &mut counts.local_added,
        (Side::Local, true) => &mut counts.local_updated,
        (Side::Remote, false) => &mut counts.remote_added,
        (Side::Remote, true) => &mut counts.remote_updated,
    };
    *n += 1;
    let kept = match side {
        Side::Local => &mut details.local,
        Side::Remote => &mut details.remote,
    };
    if *kept >= crate::report::DETAIL_LIMIT {
        return;
    }
    *kept += 1;
    let columns = match before {
        None => Vec::new(),
        Some(b) => plan
            .columns
            .iter()
            .enumerate()
            .filter(|(i, _)| b.0.get(*i) != after.0.get(*i))
            .map(|(_, c)| c.clone())
            .collect(),
    };
    details.items.push(Detail {
        table: table.to_owned(),
        key: key.clone(),
        side,
        added: before.is_none(),
        columns,
    });
}
