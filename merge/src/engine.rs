//! The lockstep walk over base, local and remote.
//!
//! Each side is a sorted stream of `(key, row)`; borrowed snapshots stream references,
//! owned ones stream their rows by value, so [`crate::merge_owned`] moves rows into the
//! merged snapshot instead of copying them, and frees input rows as it goes.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use syncfabric_vault::{Row, RowKey, Snapshot, Table};

use crate::plan::TablePlan;
use crate::report::{Detail, MergeReport};
use crate::row::{clocks_behind, merge_row, raise_clocks};
use crate::{Conflict, MergeError, MergeOutcome, Side};

/// A snapshot given by reference or by value.
pub(crate) enum Input<'a> {
    Borrowed(&'a Snapshot),
    Owned(Snapshot),
}

/// One table of one side, by reference or by value.
enum TableSrc<'a> {
    Borrowed(&'a Table),
    Owned(Table),
}

impl TableSrc<'_> {
    fn table(&self) -> &Table {
        match self {
            TableSrc::Borrowed(t) => t,
            TableSrc::Owned(t) => t,
        }
    }
}

type Item<'a> = (Cow<'a, RowKey>, Cow<'a, Row>);

/// A sorted stream of rows with its head pulled out.
struct Stream<'a> {
    it: Box<dyn Iterator<Item = Item<'a>> + 'a>,
    head: Option<Item<'a>>,
    /// The side's column count and key length, to reject malformed rows.
    width: (usize, usize),
}

impl<'a> Stream<'a> {
    fn new(src: Option<TableSrc<'a>>) -> Stream<'a> {
        let (width, mut it): (_, Box<dyn Iterator<Item = Item<'a>> + 'a>) = match src {
            None => ((0, 0), Box::new(std::iter::empty())),
            Some(TableSrc::Borrowed(t)) => (
                (t.columns.len(), t.key_columns.len()),
                Box::new(
                    t.rows
                        .iter()
                        .map(|(k, r)| (Cow::Borrowed(k), Cow::Borrowed(r))),
                ),
            ),
            Some(TableSrc::Owned(t)) => (
                (t.columns.len(), t.key_columns.len()),
                Box::new(
                    t.rows
                        .into_iter()
                        .map(|(k, r)| (Cow::Owned(k), Cow::Owned(r))),
                ),
            ),
        };
        let head = it.next();
        Stream { it, head, width }
    }

    fn key(&self) -> Option<&RowKey> {
        self.head.as_ref().map(|(k, _)| &**k)
    }

    fn take_if(&mut self, at: bool) -> Option<Item<'a>> {
        if !at {
            return None;
        }
        let out = self.head.take();
        self.head = self.it.next();
        out
    }
}

impl<'a> Input<'a> {
    fn names(&self) -> impl Iterator<Item = &String> {
        match self {
            Input::Borrowed(s) => s.tables.keys(),
            Input::Owned(s) => s.tables.keys(),
        }
    }

    fn take_table(&mut self, name: &str) -> Option<TableSrc<'a>> {
        match self {
            Input::Borrowed(s) => s.tables.get(name).map(TableSrc::Borrowed),
            Input::Owned(s) => s.tables.remove(name).map(TableSrc::Owned),
        }
    }
}

/// See [`crate::merge`] and [`crate::merge_owned`].
pub(crate) fn merge(
    mut base: Option<Input<'_>>,
    mut local: Input<'_>,
    mut remote: Input<'_>,
) -> Result<MergeOutcome, MergeError> {
    let mut names: BTreeSet<String> = local.names().cloned().collect();
    names.extend(remote.names().cloned());
    if let Some(b) = &base {
        names.extend(b.names().cloned());
    }

    let mut merged = Snapshot::default();
    let mut to_local = Snapshot::default();
    let mut to_remote = Snapshot::default();
    let mut conflicts = Vec::new();
    let mut details = Details::default();
    let mut counts = BTreeMap::new();

    for name in names {
        let sides = [
            base.as_mut().and_then(|b| b.take_table(&name)),
            local.take_table(&name),
            remote.take_table(&name),
        ];
        let plan = TablePlan::new(
            &name,
            [0, 1, 2].map(|i| sides[i].as_ref().map(|s| s.table())),
        )?;
        let schema_differs: [bool; 3] = [0, 1, 2].map(|i| {
            sides[i]
                .as_ref()
                .is_none_or(|s| s.table().columns != plan.columns)
        });
        let mut out = TableOut::default();
        merge_table(&name, &plan, sides, &mut out, &mut conflicts, &mut details)?;

        let mk = |rows: Vec<(RowKey, Row)>| Table {
            columns: plan.columns.clone(),
            key_columns: plan.key_columns.clone(),
            rows: rows.into_iter().collect(),
        };
        counts.insert(name.clone(), out.counts);
        if !out.to_local.is_empty() || schema_differs[1] {
            to_local.tables.insert(name.clone(), mk(out.to_local));
        }
        if !out.to_remote.is_empty() || schema_differs[2] {
            to_remote.tables.insert(name.clone(), mk(out.to_remote));
        }
        merged.tables.insert(name, mk(out.merged));
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

/// A side a merged row can be taken from as it is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Src {
    Base = 0,
    Local = 1,
    Remote = 2,
}

/// Where the merged row of one key comes from.
enum Pick {
    From(Src),
    New(Row),
}

fn merge_table(
    name: &str,
    plan: &TablePlan,
    sides: [Option<TableSrc<'_>>; 3],
    out: &mut TableOut,
    conflicts: &mut Vec<Conflict>,
    details: &mut Details,
) -> Result<(), MergeError> {
    let mut streams = sides.map(Stream::new);
    loop {
        // The smallest key at the heads, and which sides hold it.
        let mut min: Option<&RowKey> = None;
        for s in &streams {
            if let Some(k) = s.key() {
                if min.is_none_or(|m| k < m) {
                    min = Some(k);
                }
            }
        }
        let Some(min) = min else { break };
        let at = [0, 1, 2].map(|i| streams[i].key() == Some(min));
        let mut items: [Option<Item<'_>>; 3] = [None, None, None];
        for i in 0..3 {
            if let Some((k, r)) = streams[i].take_if(at[i]) {
                if r.0.len() != streams[i].width.0 || k.0.len() != streams[i].width.1 {
                    return Err(MergeError::MalformedRow {
                        table: name.to_owned(),
                    });
                }
                items[i] = Some((k, plan.proj[i].project(r)));
            }
        }
        let [b, l, r] = items;
        let bp = b.as_ref().map(|(_, row)| &**row);
        let lp = l.as_ref().map(|(_, row)| &**row);
        let rp = r.as_ref().map(|(_, row)| &**row);
        let row_of = |s: Src| match s {
            Src::Base => bp,
            Src::Local => lp,
            Src::Remote => rp,
        };
        // A row missing on one side but present in base is unchanged on that side.
        let lsrc = if lp.is_some() {
            Some(Src::Local)
        } else {
            bp.map(|_| Src::Base)
        };
        let rsrc = if rp.is_some() {
            Some(Src::Remote)
        } else {
            bp.map(|_| Src::Base)
        };
        let key: &RowKey = match (&l, &r, &b) {
            (Some((k, _)), _, _) | (None, Some((k, _)), _) | (None, None, Some((k, _))) => k,
            (None, None, None) => continue,
        };
        let mut same = false;
        let pick = match (lsrc, rsrc) {
            (None, None) => continue,
            (Some(x), None) | (None, Some(x)) => Pick::From(x),
            (Some(x), Some(y)) => {
                let (Some(le), Some(re)) = (row_of(x), row_of(y)) else {
                    continue;
                };
                if le == re {
                    // The common case: both sides hold the same row.
                    same = x == Src::Local && y == Src::Remote;
                    Pick::From(x)
                } else if bp == Some(le) {
                    one_side(plan, y, re, le)
                } else if bp == Some(re) {
                    one_side(plan, x, le, re)
                } else {
                    let (row, c) = merge_row(plan, bp, le, re);
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
                    Pick::New(row)
                }
            }
        };
        let merged: &Row = match &pick {
            Pick::From(s) => match row_of(*s) {
                Some(row) => row,
                None => continue,
            },
            Pick::New(row) => row,
        };
        let local_stale = !same && !pick_is(&pick, Src::Local) && lp != Some(merged);
        let remote_stale = !same && !pick_is(&pick, Src::Remote) && rp != Some(merged);
        if local_stale {
            note(
                plan,
                name,
                key,
                Side::Local,
                lp,
                merged,
                &mut out.counts,
                details,
            );
            out.to_local.push((key.clone(), merged.clone()));
        }
        if remote_stale {
            note(
                plan,
                name,
                key,
                Side::Remote,
                rp,
                merged,
                &mut out.counts,
                details,
            );
            out.to_remote.push((key.clone(), merged.clone()));
        }
        // Move the row and its key out of an owned side (a borrowed one is cloned).
        let mut parts = [b, l, r];
        let taken = match pick {
            Pick::From(s) => parts[s as usize].take(),
            Pick::New(row) => {
                let k = [1, 2, 0]
                    .into_iter()
                    .find_map(|i| parts[i].take().map(|(k, _)| k));
                k.map(|k| (k, Cow::Owned(row)))
            }
        };
        let Some((key, row)) = taken else { continue };
        out.merged.push((key.into_owned(), row.into_owned()));
    }
    Ok(())
}

fn pick_is(p: &Pick, s: Src) -> bool {
    matches!(p, Pick::From(x) if *x == s)
}

/// The changed side's row, its clocks raised to the other side's so the merged row's
/// `updated_at` is never behind either side (clock skew).
fn one_side(plan: &TablePlan, src: Src, changed: &Row, other: &Row) -> Pick {
    if clocks_behind(plan, changed, other) {
        let mut row = changed.clone();
        raise_clocks(plan, &mut row, other);
        Pick::New(row)
    } else {
        Pick::From(src)
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
