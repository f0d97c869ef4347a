//! The lockstep walk over base, local and remote.
//!
//! Each side is a [`RowSource`]: per table, a cursor over its rows in ascending key
//! order that lends one row at a time. The walk looks at the three heads, decides the
//! merged row of the smallest key, copies only what must be kept (rows a side must
//! write, conflicts, the merged row when asked) and advances. Memory is proportional to
//! what changed, not to the vault.

use std::collections::{BTreeMap, BTreeSet};

use syncfabric_vault::{Row, RowCursor, RowKey, RowSource, Snapshot, Table, TableSchema, Value};

use crate::plan::{Projection, TablePlan};
use crate::report::{Counts, Descr, Detail, MergeReport, Needs, DETAIL_LIMIT};
use crate::row::{clocks_behind, merge_row, raise_clocks};
use crate::{
    AttachmentFiles, Conflict, LiveItems, MergeError, MergeOptions, MergeOutcome, Side, SourceSide,
};

/// Tables merged last, in this order: the report names rows of other tables by the
/// titles of their folder and item, which are collected while these are walked.
const TITLE_TABLES: [&str; 2] = ["folder", "item"];

/// See [`crate::merge_sources`].
pub(crate) fn merge(
    base: Option<&dyn RowSource>,
    local: &dyn RowSource,
    remote: &dyn RowSource,
    opts: &MergeOptions,
) -> Result<MergeOutcome, MergeError> {
    let empty = Snapshot::default();
    let sources: [&dyn RowSource; 3] = [base.unwrap_or(&empty), local, remote];
    let schemas = read_schemas(&sources)?;
    let mut st = Walk::new(opts);
    for name in table_order(&schemas) {
        merge_table(name, &sources, &schemas, &mut st)?;
    }
    Ok(st.finish())
}

/// Each side's table schemas (base, local, remote), by table name.
fn read_schemas(
    sources: &[&dyn RowSource; 3],
) -> Result<[BTreeMap<String, TableSchema>; 3], MergeError> {
    let sides = [SourceSide::Base, SourceSide::Local, SourceSide::Remote];
    let mut schemas: [BTreeMap<String, TableSchema>; 3] = Default::default();
    for i in 0..3 {
        schemas[i] = sources[i]
            .schema()
            .map_err(|source| MergeError::Source {
                side: sides[i],
                table: None,
                source,
            })?
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect();
    }
    Ok(schemas)
}

/// The names of the tables any side has, in the order they are merged (the
/// [`TITLE_TABLES`] last).
fn table_order(schemas: &[BTreeMap<String, TableSchema>; 3]) -> Vec<String> {
    let mut names: Vec<String> = schemas
        .iter()
        .flat_map(|s| s.keys().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    names.sort_by_key(|n| TITLE_TABLES.iter().position(|t| t == n));
    names
}

/// Merges table `name` of the three sides and stores what came of it in `st`.
fn merge_table(
    name: String,
    sources: &[&dyn RowSource; 3],
    schemas: &[BTreeMap<String, TableSchema>; 3],
    st: &mut Walk,
) -> Result<(), MergeError> {
    let plan = TablePlan::new(&name, [0, 1, 2].map(|i| schemas[i].get(&name)))?;
    let widths = [0, 1, 2].map(|i| {
        schemas[i]
            .get(&name)
            .map_or((0, 0), |t| (t.columns.len(), t.key_columns.len()))
    });
    let schema_differs: [bool; 3] = [0, 1, 2].map(|i| {
        schemas[i]
            .get(&name)
            .is_none_or(|s| s.columns != plan.columns)
    });
    let out = scan_table(&name, &plan, sources, widths, st)?;
    st.store_table(name, &plan, out, schema_differs);
    Ok(())
}

/// Walks table `name` with the three sides' cursors open at once; the rows decided.
/// The first error wins: the walk's own, else the innermost scan's.
fn scan_table(
    name: &str,
    plan: &TablePlan,
    sources: &[&dyn RowSource; 3],
    widths: [(usize, usize); 3],
    st: &mut Walk,
) -> Result<TableOut, MergeError> {
    let sides = [SourceSide::Base, SourceSide::Local, SourceSide::Remote];
    let mut out = TableOut::default();
    let mut err: Option<MergeError> = None;
    let source_err = |i: usize, source| MergeError::Source {
        side: sides[i],
        table: Some(name.to_owned()),
        source,
    };
    let scanned = sources[0].scan(name, &mut |cb| {
        let scanned = sources[1].scan(name, &mut |cl| {
            let scanned = sources[2].scan(name, &mut |cr| {
                let cursors: [&mut dyn RowCursor; 3] = [&mut *cb, &mut *cl, &mut *cr];
                if let Err(e) = walk_table(name, plan, cursors, widths, &mut out, st) {
                    err = Some(e);
                }
            });
            if let Err(e) = scanned {
                err.get_or_insert(source_err(2, e));
            }
        });
        if let Err(e) = scanned {
            err.get_or_insert(source_err(1, e));
        }
    });
    if let Err(e) = scanned {
        err.get_or_insert(source_err(0, e));
    }
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// What the walk accumulates over all tables.
struct Walk {
    keep_merged: bool,
    merged: Option<Snapshot>,
    to_local: Snapshot,
    to_remote: Snapshot,
    /// In walk order; `conflict_descr` describes the first [`DETAIL_LIMIT`] of them.
    conflicts: Vec<Conflict>,
    conflict_descr: Vec<Descr>,
    details: Vec<Detail>,
    /// Details kept per side (local, remote).
    detail_count: [usize; 2],
    counts: BTreeMap<String, Counts>,
    live: LiveItems,
    files: AttachmentFiles,
    /// Folder and item uuids the report must name, and their titles once seen.
    needs: Needs,
}

impl Walk {
    /// An empty walk; it keeps the merged snapshot when `opts` asks for it.
    fn new(opts: &MergeOptions) -> Self {
        Walk {
            keep_merged: opts.keep_merged,
            merged: opts.keep_merged.then(Snapshot::default),
            to_local: Snapshot::default(),
            to_remote: Snapshot::default(),
            conflicts: Vec::new(),
            details: Vec::new(),
            detail_count: [0, 0],
            conflict_descr: Vec::new(),
            counts: BTreeMap::new(),
            live: LiveItems::default(),
            files: AttachmentFiles::default(),
            needs: Needs::default(),
        }
    }

    /// Stores table `name`'s outcome: its counts, the rows each side must write (the
    /// whole table when that side's columns differ) and the merged rows when kept.
    fn store_table(
        &mut self,
        name: String,
        plan: &TablePlan,
        out: TableOut,
        schema_differs: [bool; 3],
    ) {
        let mk = |rows: Vec<(RowKey, Row)>| Table {
            columns: plan.columns.clone(),
            key_columns: plan.key_columns.clone(),
            rows: rows.into_iter().collect(),
        };
        self.counts.insert(name.clone(), out.counts);
        if !out.to_local.is_empty() || schema_differs[1] {
            self.to_local.tables.insert(name.clone(), mk(out.to_local));
        }
        if !out.to_remote.is_empty() || schema_differs[2] {
            self.to_remote
                .tables
                .insert(name.clone(), mk(out.to_remote));
        }
        if let Some(m) = &mut self.merged {
            m.tables.insert(name, mk(out.merged));
        }
    }

    /// The outcome of the whole walk, with its report.
    fn finish(self) -> MergeOutcome {
        let report = MergeReport::build(
            self.counts,
            self.details,
            &self.conflicts,
            self.conflict_descr,
            &self.needs,
        );
        // Conflicts in table and key order (the walk took the title tables last; the sort
        // is stable, so keys stay in order within a table).
        let mut conflicts = self.conflicts;
        conflicts.sort_by(|a, b| a.table.cmp(&b.table));
        MergeOutcome {
            merged: self.merged,
            to_local: self.to_local,
            to_remote: self.to_remote,
            conflicts,
            report,
            live_items: self.live,
            attachment_files: self.files,
        }
    }
}

#[derive(Default)]
struct TableOut {
    merged: Vec<(RowKey, Row)>,
    to_local: Vec<(RowKey, Row)>,
    to_remote: Vec<(RowKey, Row)>,
    counts: Counts,
}

/// One side's cursor, with its row seen through the merged columns and its order
/// checked.
struct Stream<'c> {
    cur: &'c mut dyn RowCursor,
    proj: Projection,
    /// The projected row, when the side's columns differ from the merged ones.
    scratch: Row,
    /// The side's column count and key length, to reject malformed rows.
    width: (usize, usize),
    live: bool,
    side: SourceSide,
}

impl<'c> Stream<'c> {
    fn advance(&mut self, table: &str) -> Result<(), MergeError> {
        let more = self.cur.advance().map_err(|source| MergeError::Source {
            side: self.side,
            table: Some(table.to_owned()),
            source,
        })?;
        self.live = false;
        if !more {
            return Ok(());
        }
        let Some((k, r)) = self.cur.current() else {
            return Ok(());
        };
        if r.0.len() != self.width.0 || k.0.len() != self.width.1 {
            return Err(MergeError::MalformedRow {
                table: table.to_owned(),
            });
        }
        if let Projection::Map(_) = self.proj {
            self.proj.project_into(r, &mut self.scratch);
        }
        self.live = true;
        Ok(())
    }

    fn head(&self) -> Option<(&RowKey, &Row)> {
        if !self.live {
            return None;
        }
        let (k, r) = self.cur.current()?;
        match self.proj {
            Projection::Identity => Some((k, r)),
            Projection::Map(_) => Some((k, &self.scratch)),
        }
    }
}

/// A side a merged row can be taken from as it is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Src {
    Base,
    Local,
    Remote,
}

/// Where the merged row of one key comes from.
enum Pick {
    From(Src),
    New(Row),
}

fn walk_table(
    name: &str,
    plan: &TablePlan,
    cursors: [&mut dyn RowCursor; 3],
    widths: [(usize, usize); 3],
    out: &mut TableOut,
    st: &mut Walk,
) -> Result<(), MergeError> {
    let sides = [SourceSide::Base, SourceSide::Local, SourceSide::Remote];
    let mut i = 0;
    let mut streams = cursors.map(|cur| {
        let s = Stream {
            cur,
            proj: plan.proj[i].clone(),
            scratch: Row(Vec::new()),
            width: widths[i],
            live: false,
            side: sides[i],
        };
        i += 1;
        s
    });
    for s in &mut streams {
        s.advance(name)?;
    }
    let proj = Projections::new(name, plan);
    // The key just merged: every head after it must be greater (sources are sorted).
    let mut last = RowKey(Vec::new());
    let mut first = true;
    loop {
        let at = {
            let heads = [streams[0].head(), streams[1].head(), streams[2].head()];
            // The smallest key at the heads, and which sides hold it (one comparison per
            // head).
            let mut min: Option<&RowKey> = None;
            let mut at = [false; 3];
            for (i, h) in heads.iter().enumerate() {
                let Some((k, _)) = h else { continue };
                match min.map(|m| (*k).cmp(m)) {
                    None | Some(std::cmp::Ordering::Less) => {
                        min = Some(k);
                        at = [false; 3];
                        at[i] = true;
                    }
                    Some(std::cmp::Ordering::Equal) => at[i] = true,
                    Some(std::cmp::Ordering::Greater) => {}
                }
            }
            let Some(min) = min else {
                break;
            };
            if !first && *min <= last {
                let side = (0..3)
                    .find(|&i| at[i])
                    .map_or(SourceSide::Base, |i| sides[i]);
                return Err(MergeError::Unsorted {
                    side,
                    table: name.to_owned(),
                });
            }
            first = false;
            last.0.clone_from(&min.0);
            let rows = [0, 1, 2].map(|i| heads[i].filter(|_| at[i]).map(|(_, r)| r));
            merge_key(name, plan, &proj, min, rows, out, st);
            at
        };
        for (s, at) in streams.iter_mut().zip(at) {
            if at {
                s.advance(name)?;
            }
        }
    }
    Ok(())
}

/// Decides the merged row of one key and records what each side must write.
fn merge_key(
    name: &str,
    plan: &TablePlan,
    proj: &Projections,
    key: &RowKey,
    [bp, lp, rp]: [Option<&Row>; 3],
    out: &mut TableOut,
    st: &mut Walk,
) {
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
    let mut same = false;
    let pick = match (lsrc, rsrc) {
        (None, None) => return,
        (Some(x), None) | (None, Some(x)) => Pick::From(x),
        (Some(x), Some(y)) => {
            let (Some(le), Some(re)) = (row_of(x), row_of(y)) else {
                return;
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
                    if st.conflict_descr.len() < DETAIL_LIMIT {
                        st.conflict_descr
                            .push(Descr::of(name, plan, key, &row, &mut st.needs));
                    }
                    st.conflicts.push(Conflict {
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
            None => return,
        },
        Pick::New(row) => row,
    };
    proj.observe(lp, rp, merged, st);
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
            st,
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
            st,
        );
        out.to_remote.push((key.clone(), merged.clone()));
    }
    if st.keep_merged {
        let row = match pick {
            Pick::New(row) => row,
            Pick::From(_) => merged.clone(),
        };
        out.merged.push((key.clone(), row));
    }
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
    st: &mut Walk,
) {
    let n = match (side, before.is_some()) {
        (Side::Local, false) => &mut counts.local_added,
        (Side::Local, true) => &mut counts.local_updated,
        (Side::Remote, false) => &mut counts.remote_added,
        (Side::Remote, true) => &mut counts.remote_updated,
    };
    *n += 1;
    let kept = &mut st.detail_count[side as usize];
    if *kept >= DETAIL_LIMIT {
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
    st.details.push(Detail {
        what: Descr::of(table, plan, key, after, &mut st.needs),
        side,
        added: before.is_none(),
        columns,
    });
}

/// The projections the sync engine needs instead of the merged content: live items
/// per side, attachment files, and the titles the report names rows by.
struct Projections {
    kind: Kind,
    uuid: Option<usize>,
    deleted: Option<usize>,
    trashed: Option<usize>,
    password: Option<usize>,
    title: Option<usize>,
}

#[derive(PartialEq, Eq)]
enum Kind {
    Item,
    Folder,
    Attachment,
    Other,
}

fn flag(row: &Row, i: Option<usize>) -> bool {
    i.and_then(|i| row.0.get(i))
        .and_then(Value::as_i64)
        .unwrap_or(0)
        != 0
}

impl Projections {
    fn new(table: &str, plan: &TablePlan) -> Projections {
        let pos = |c: &str| plan.columns.iter().position(|x| x == c);
        Projections {
            kind: match table {
                "item" => Kind::Item,
                "folder" => Kind::Folder,
                "attachment" => Kind::Attachment,
                _ => Kind::Other,
            },
            uuid: pos("uuid"),
            deleted: pos("deleted"),
            trashed: pos("trashed"),
            password: pos("password"),
            title: pos("title"),
        }
    }

    fn uuid<'r>(&self, row: &'r Row) -> Option<&'r str> {
        self.uuid.and_then(|i| row.0.get(i)).and_then(Value::as_str)
    }

    fn observe(&self, local: Option<&Row>, remote: Option<&Row>, merged: &Row, st: &mut Walk) {
        match self.kind {
            Kind::Other => {}
            Kind::Item => {
                if self.uuid(merged).is_none() {
                    return;
                }
                let live = |r: &Row| !flag(r, self.deleted) && !flag(r, self.trashed);
                let now = live(merged);
                let l = &mut st.live;
                if local.is_some_and(live) {
                    l.local += 1;
                    l.local_lost += usize::from(!now);
                }
                if remote.is_some_and(live) {
                    l.remote += 1;
                    l.remote_lost += usize::from(!now);
                }
                l.merged += usize::from(now);
                self.title(merged, true, st);
            }
            Kind::Folder => self.title(merged, false, st),
            Kind::Attachment => {
                let Some(uuid) = self.uuid(merged) else {
                    return;
                };
                // The vault keeps an attachment's content in its own file exactly when
                // the row carries that file's key (`password`); inline ones have none.
                let external = match self.password.and_then(|i| merged.0.get(i)) {
                    Some(Value::Blob(b)) => !b.is_empty(),
                    Some(Value::Text(s)) => !s.is_empty(),
                    _ => false,
                };
                if !external {
                    return;
                }
                let set = if flag(merged, self.deleted) {
                    &mut st.files.dead
                } else {
                    &mut st.files.live
                };
                set.insert(uuid.to_owned());
            }
        }
    }

    /// Records the title of a folder or item the report has to name.
    fn title(&self, merged: &Row, item: bool, st: &mut Walk) {
        let Some(uuid) = self.uuid(merged) else {
            return;
        };
        let title = self
            .title
            .and_then(|i| merged.0.get(i))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        if let Some(title) = title {
            st.needs.found(item, uuid, title);
        }
    }
}
