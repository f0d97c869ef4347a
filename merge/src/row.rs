//! The merge of one row that changed on both sides (or that both sides hold without a
//! base): column group by column group.

use std::cmp::Ordering;

use syncfabric_vault::{Row, Value};

use crate::history::{self, Entry};
use crate::plan::{FieldCols, Group, GroupKind, TablePlan};
use crate::{Deletion, Side, Winner};

/// What was contested in a row, in merged-column positions.
#[derive(Debug)]
pub(crate) struct RowConflict {
    pub columns: Vec<usize>,
    pub winner: Winner,
    pub deletion: Option<Deletion>,
    pub loser_in_history: Option<bool>,
}

fn is_deleted(v: &Value) -> bool {
    v.as_i64().is_some_and(|x| x != 0)
}

fn cols_eq(a: &Row, b: &Row, cols: &[usize]) -> bool {
    cols.iter().all(|&c| a.0.get(c) == b.0.get(c))
}

fn cols_cmp(a: &Row, b: &Row, cols: &[usize]) -> Ordering {
    for &c in cols {
        let o = a.0.get(c).cmp(&b.0.get(c));
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// Whether any clock column of `other` is later than `row`'s.
pub(crate) fn clocks_behind(plan: &TablePlan, row: &Row, other: &Row) -> bool {
    plan.groups
        .iter()
        .filter(|g| g.kind == GroupKind::Clock)
        .flat_map(|g| g.cols.iter())
        .any(|&c| other.0.get(c) > row.0.get(c))
}

/// Raises every clock column of `row` to at least `other`'s.
pub(crate) fn raise_clocks(plan: &TablePlan, row: &mut Row, other: &Row) {
    for g in plan.groups.iter().filter(|g| g.kind == GroupKind::Clock) {
        for &c in &g.cols {
            if let (Some(o), Some(slot)) = (other.0.get(c), row.0.get_mut(c)) {
                if *o > *slot {
                    *slot = o.clone();
                }
            }
        }
    }
}

/// Merges a row both sides changed (three-way with `base`, two-way without).
pub(crate) fn merge_row(
    plan: &TablePlan,
    base: Option<&Row>,
    l: &Row,
    r: &Row,
) -> (Row, Option<RowConflict>) {
    let clock_ord = match plan.clock {
        Some(c) => l.0.get(c).cmp(&r.0.get(c)),
        None => Ordering::Equal,
    };
    let winner = match clock_ord {
        Ordering::Greater => Winner::Local,
        Ordering::Less => Winner::Remote,
        Ordering::Equal => Winner::Tie,
    };
    let sides = Sides {
        base,
        l,
        r,
        clock_ord,
    };
    let mut out = l.clone();
    let mut conflict_cols = Vec::new();
    let mut deletion = None;
    let mut loser: Option<&Row> = None;
    let mut history_group = None;

    for g in &plan.groups {
        match g.kind {
            GroupKind::Clock => raise_clocks_cols(&mut out, r, &g.cols),
            GroupKind::History => history_group = Some(g),
            GroupKind::Deleted => {
                if let Some(d) = sides.merge_deleted_group(&mut out, &g.cols) {
                    deletion = Some(d);
                }
            }
            GroupKind::Plain | GroupKind::FieldValue => {
                if let Some(row) = sides.merge_plain_group(&mut out, &mut conflict_cols, g) {
                    loser = Some(row);
                }
            }
        }
    }

    let loser_in_history = match (history_group, plan.field) {
        (Some(g), Some(field)) => {
            sides.merge_history(&mut out, &mut conflict_cols, g, field, loser)
        }
        _ => None,
    };

    let conflict = if conflict_cols.is_empty() && deletion.is_none() {
        None
    } else {
        conflict_cols.sort_unstable();
        Some(RowConflict {
            columns: conflict_cols,
            winner,
            deletion,
            loser_in_history,
        })
    };
    (out, conflict)
}

/// The two sides of a row being merged, its base, and how their clocks compare.
struct Sides<'a> {
    base: Option<&'a Row>,
    l: &'a Row,
    r: &'a Row,
    clock_ord: Ordering,
}

impl<'a> Sides<'a> {
    /// Merges the `deleted` columns `cols` into `out`; the last delete-versus-edit
    /// decision among them, if any.
    fn merge_deleted_group(&self, out: &mut Row, cols: &[usize]) -> Option<Deletion> {
        let mut deletion = None;
        for &c in cols {
            let (v, d) = merge_deleted(self.base, self.l, self.r, c, self.clock_ord);
            if let Some(v) = v {
                out.0[c] = v;
            }
            if d.is_some() {
                deletion = d;
            }
        }
        deletion
    }

    /// Merges a plain or field-value group into `out`, adding contested columns to
    /// `conflict_cols`; the losing row when a field value was contested.
    fn merge_plain_group(
        &self,
        out: &mut Row,
        conflict_cols: &mut Vec<usize>,
        g: &Group,
    ) -> Option<&'a Row> {
        let (l, r) = (self.l, self.r);
        if cols_eq(l, r, &g.cols) {
            return None;
        }
        let mut loser = None;
        let take_remote = match self.base {
            Some(b) if cols_eq(b, l, &g.cols) => true,
            Some(b) if cols_eq(b, r, &g.cols) => false,
            _ => {
                conflict_cols.extend(g.cols.iter().filter(|&&c| l.0[c] != r.0[c]));
                let remote_wins = match self.clock_ord {
                    Ordering::Less => true,
                    Ordering::Greater => false,
                    Ordering::Equal => cols_cmp(r, l, &g.cols) == Ordering::Greater,
                };
                if g.kind == GroupKind::FieldValue {
                    loser = Some(if remote_wins { l } else { r });
                }
                remote_wins
            }
        };
        if take_remote {
            for &c in &g.cols {
                out.0[c] = r.0[c].clone();
            }
        }
        loser
    }

    /// Merges the field's history column into `out`, keeping the losing value (from
    /// `loser`) in it when it can; whether it was kept (None: nothing to keep).
    fn merge_history(
        &self,
        out: &mut Row,
        conflict_cols: &mut Vec<usize>,
        g: &Group,
        field: FieldCols,
        loser: Option<&Row>,
    ) -> Option<bool> {
        let mut loser_in_history = None;
        let hc = field.history;
        let hb = self.base.map(|b| &b.0[hc]);
        let (hl, hr) = (&self.l.0[hc], &self.r.0[hc]);
        let loser_entry = loser.and_then(|row| losing_entry(field, row));
        let picked = picked_history(hb, hl, hr);
        let entries = match picked {
            Some(p) if loser_entry.is_none() => {
                out.0[hc] = p.clone();
                None
            }
            Some(p) => history::parse(p),
            None => match (history::parse(hl), history::parse(hr)) {
                (Some(a), Some(b)) => Some(history::union(a, &b)),
                _ => None,
            },
        };
        match entries {
            Some(mut e) => {
                if let Some(le) = loser_entry {
                    e = history::union(e, &[le]);
                    loser_in_history = Some(true);
                }
                let mut candidates = vec![hl, hr];
                candidates.extend(hb);
                out.0[hc] = history::render(&e, &candidates);
            }
            None if picked.is_none() || loser_entry.is_some() => {
                // A history that is not a JSON array: merge it as a plain column and
                // say that the losing value could not be kept.
                if loser_entry.is_some() {
                    loser_in_history = Some(false);
                }
                match picked {
                    Some(p) => out.0[hc] = p.clone(),
                    None => {
                        conflict_cols.extend_from_slice(&g.cols);
                        let remote_wins = match self.clock_ord {
                            Ordering::Less => true,
                            Ordering::Greater => false,
                            Ordering::Equal => hr > hl,
                        };
                        out.0[hc] = if remote_wins { hr.clone() } else { hl.clone() };
                    }
                }
            }
            None => {}
        }
        loser_in_history
    }
}

/// The history entry for the losing row's field value (None when the value is empty
/// or not text).
fn losing_entry(field: FieldCols, row: &Row) -> Option<Entry> {
    match &row.0[field.value] {
        Value::Text(t) if !t.is_empty() => {
            let at = field
                .value_time
                .and_then(|i| row.0[i].as_i64())
                .unwrap_or(0);
            Some(Entry::new(at, t))
        }
        _ => None,
    }
}

/// Which history the three-way rule picks, or None when both sides changed it.
fn picked_history<'v>(hb: Option<&'v Value>, hl: &'v Value, hr: &'v Value) -> Option<&'v Value> {
    if hl == hr {
        Some(hl)
    } else if hb == Some(hl) {
        Some(hr)
    } else if hb == Some(hr) {
        Some(hl)
    } else {
        None
    }
}

fn raise_clocks_cols(out: &mut Row, other: &Row, cols: &[usize]) {
    for &c in cols {
        if other.0[c] > out.0[c] {
            out.0[c] = other.0[c].clone();
        }
    }
}

/// The `deleted` column of a row both sides changed: the new value (None: keep local's)
/// and, when a delete met an edit, how that was decided.
fn merge_deleted(
    base: Option<&Row>,
    l: &Row,
    r: &Row,
    c: usize,
    clock_ord: Ordering,
) -> (Option<Value>, Option<Deletion>) {
    let (vl, vr) = (&l.0[c], &r.0[c]);
    if vl == vr {
        return (None, None);
    }
    let vb = base.map(|b| &b.0[c]);
    // Only one side changed the flag.
    let changed_only = if vb == Some(vl) {
        Some(Side::Remote)
    } else if vb == Some(vr) {
        Some(Side::Local)
    } else {
        None
    };
    let (dl, dr) = (is_deleted(vl), is_deleted(vr));
    let pick = |side: Side| match side {
        Side::Local => Some(vl.clone()),
        Side::Remote => Some(vr.clone()),
    };
    match changed_only {
        // An undelete on one side while the other side changed its tombstone too (this
        // runs only for rows both sides changed): delete against edit, by the clocks
        // (rule 6). The other side's change may be a later delete of its own that a
        // merge folded into a base already holding an older one (a commit that did not
        // land after its download was recorded as base): the undelete must not win by
        // being "the only change of the flag".
        Some(side)
            if dl != dr
                && !(match side {
                    Side::Local => dl,
                    Side::Remote => dr,
                }) =>
        {
            resolve_delete_vs_edit(side.other(), clock_ord, vl, vr)
        }
        // An undelete (or another non-delete change) on one side only: that side wins.
        Some(side)
            if !(match side {
                Side::Local => dl,
                Side::Remote => dr,
            }) || dl == dr =>
        {
            (pick(side), None)
        }
        // A delete on one side, an edit on the other.
        Some(deleter) => resolve_delete_vs_edit(deleter, clock_ord, vl, vr),
        None if dl != dr => {
            let deleter = if dl { Side::Local } else { Side::Remote };
            resolve_delete_vs_edit(deleter, clock_ord, vl, vr)
        }
        // Both changed to different non-matching values of the same liveness.
        None => (Some(if vr > vl { vr.clone() } else { vl.clone() }), None),
    }
}

/// The edit revives the row only if it is strictly later than the delete.
fn resolve_delete_vs_edit(
    deleter: Side,
    clock_ord: Ordering,
    vl: &Value,
    vr: &Value,
) -> (Option<Value>, Option<Deletion>) {
    let editor_later = match deleter {
        Side::Local => clock_ord == Ordering::Less,
        Side::Remote => clock_ord == Ordering::Greater,
    };
    let (deleted_v, live_v) = match deleter {
        Side::Local => (vl, vr),
        Side::Remote => (vr, vl),
    };
    if editor_later {
        (
            Some(live_v.clone()),
            Some(Deletion::Revived {
                deleted_by: deleter,
            }),
        )
    } else {
        (
            Some(deleted_v.clone()),
            Some(Deletion::StayedDeleted {
                deleted_by: deleter,
            }),
        )
    }
}
