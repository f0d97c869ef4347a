//! Property tests: random edit histories on 2..6 replicas that sync in random orders
//! through one shared "remote"; each replica keeps its own base (the last snapshot it
//! synced). Laws checked at every sync and at the end.

// `is_multiple_of` is newer than the workspace MSRV (1.85).
#![allow(clippy::manual_is_multiple_of)]

mod common;

use std::collections::BTreeSet;

use common::*;
use proptest::prelude::*;
use syncfabric_merge::{
    merge, merge_sources, AttachmentFiles, LiveItems, MergeOptions, MergeOutcome, Row, RowKey,
    RowSource, Snapshot, Table, Value,
};

const T0: i64 = 1_600_000_000;
const ITEMS: [&str; 4] = [
    "00000000-0000-4000-8000-000000000001",
    "00000000-0000-4000-8000-000000000002",
    "00000000-0000-4000-8000-000000000003",
    "00000000-0000-4000-8000-000000000004",
];
const FOLDERS: [&str; 2] = ["F1", "F2"];
const UIDS: [i64; 2] = [10, 11];

#[derive(Clone, Debug)]
enum Op {
    Title {
        rep: usize,
        item: usize,
    },
    Field {
        rep: usize,
        item: usize,
        field: usize,
    },
    Delete {
        rep: usize,
        item: usize,
    },
    Trash {
        rep: usize,
        item: usize,
    },
    Move {
        rep: usize,
        item: usize,
        folder: usize,
    },
    Add {
        rep: usize,
        item: usize,
    },
    Sync {
        rep: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let rep = 0usize..6;
    let item = 0usize..ITEMS.len();
    prop_oneof![
        1 => (rep.clone(), item.clone()).prop_map(|(rep, item)| Op::Title { rep, item }),
        3 => (rep.clone(), item.clone(), 0usize..2).prop_map(|(rep, item, field)| Op::Field { rep, item, field }),
        1 => (rep.clone(), item.clone()).prop_map(|(rep, item)| Op::Delete { rep, item }),
        1 => (rep.clone(), item.clone()).prop_map(|(rep, item)| Op::Trash { rep, item }),
        1 => (rep.clone(), item.clone(), 0usize..2).prop_map(|(rep, item, folder)| Op::Move { rep, item, folder }),
        1 => (rep.clone(), item.clone()).prop_map(|(rep, item)| Op::Add { rep, item }),
        3 => rep.prop_map(|rep| Op::Sync { rep }),
    ]
}

/// A device's clock error: up to an hour either way. Multiples of the 7 s step between
/// operations, often small, so that edits on different devices often carry equal times.
fn skew() -> impl Strategy<Value = i64> {
    prop_oneof![
        (-10i64..=10).prop_map(|k| k * 7),
        (-514i64..=514).prop_map(|k| k * 7)
    ]
}

fn initial() -> Snapshot {
    let mut s = empty();
    for f in FOLDERS {
        put(
            &mut s,
            "folder",
            &[("uuid", t(f)), ("title", t(f)), ("updated_at", i(T0))],
        );
    }
    add_login(&mut s, ITEMS[0], "first", "u0", "p0", T0);
    add_login(&mut s, ITEMS[1], "second", "u1", "p1", T0);
    move_item(&mut s, ITEMS[0], "F1", T0);
    // An unknown table, merged by the same rules.
    let mut pk = Table::new(
        ["uuid", "credential", "updated_at", "deleted"]
            .map(String::from)
            .to_vec(),
        vec!["uuid".into()],
    );
    pk.rows
        .insert(item_key("P1"), Row(vec![t("P1"), t("c0"), i(T0), i(0)]));
    s.tables.insert("passkeys".into(), pk);
    s
}

struct World {
    remote: Snapshot,
    locals: Vec<Snapshot>,
    bases: Vec<Option<Snapshot>>,
    skews: Vec<i64>,
    now: i64,
    counter: u64,
    /// Every field value ever written: (item, uid, value).
    written: BTreeSet<(String, i64, String)>,
}

fn row<'a>(s: &'a Snapshot, table: &str, key: &RowKey) -> Option<&'a Row> {
    s.table(table).and_then(|t| t.rows.get(key))
}

fn col(s: &Snapshot, table: &str, key: &RowKey, c: &str) -> Option<Value> {
    let t = s.table(table)?;
    t.rows.get(key).and_then(|r| t.get(r, c)).cloned()
}

/// Upserts a change set, as `Vault::apply` does.
fn apply(target: &Snapshot, changes: &Snapshot) -> Snapshot {
    let mut out = target.clone();
    for (name, t) in &changes.tables {
        let dst = out
            .tables
            .entry(name.clone())
            .or_insert_with(|| Table::new(t.columns.clone(), t.key_columns.clone()));
        assert_eq!(dst.columns, t.columns, "fixture tables keep their columns");
        for (k, r) in &t.rows {
            dst.rows.insert(k.clone(), r.clone());
        }
    }
    out
}

/// Live items of a snapshot: uuid -> live.
fn liveness(s: &Snapshot) -> std::collections::BTreeMap<String, bool> {
    let Some(t) = s.table("item") else {
        return Default::default();
    };
    let flag = |r: &Row, c: &str| t.get(r, c).and_then(Value::as_i64).unwrap_or(0) != 0;
    t.rows
        .values()
        .filter_map(|r| {
            let uuid = t.get(r, "uuid")?.as_str()?.to_owned();
            Some((uuid, !flag(r, "deleted") && !flag(r, "trashed")))
        })
        .collect()
}

/// What `MergeOutcome::live_items` must say, computed from whole snapshots.
fn live_items(l: &Snapshot, r: &Snapshot, m: &Snapshot) -> LiveItems {
    let (lv, rv, mv) = (liveness(l), liveness(r), liveness(m));
    let count = |side: &std::collections::BTreeMap<String, bool>| {
        let live: Vec<&String> = side.iter().filter(|(_, v)| **v).map(|(k, _)| k).collect();
        let lost = live.iter().filter(|u| mv.get(**u) != Some(&true)).count();
        (live.len(), lost)
    };
    let ((local, local_lost), (remote, remote_lost)) = (count(&lv), count(&rv));
    LiveItems {
        local,
        local_lost,
        remote,
        remote_lost,
        merged: mv.values().filter(|v| **v).count(),
    }
}

/// What `MergeOutcome::attachment_files` must say (the fixtures have no attachments
/// table unless a test adds one: then both are empty).
fn attachment_files(m: &Snapshot) -> AttachmentFiles {
    let mut out = AttachmentFiles::default();
    let Some(t) = m.table("attachment") else {
        return out;
    };
    for r in t.rows.values() {
        let external = match t.get(r, "password") {
            Some(Value::Blob(b)) => !b.is_empty(),
            Some(Value::Text(s)) => !s.is_empty(),
            _ => false,
        };
        let Some(uuid) = t.get(r, "uuid").and_then(Value::as_str) else {
            continue;
        };
        if external {
            let dead = t.get(r, "deleted").and_then(Value::as_i64).unwrap_or(0) != 0;
            if dead { &mut out.dead } else { &mut out.live }.insert(uuid.to_owned());
        }
    }
    out
}

/// Everything but the merged content.
fn same_changes(a: &MergeOutcome, b: &MergeOutcome) -> bool {
    a.to_local == b.to_local
        && a.to_remote == b.to_remote
        && a.conflicts == b.conflicts
        && a.report == b.report
        && a.live_items == b.live_items
        && a.attachment_files == b.attachment_files
}

fn same_outcome(a: &MergeOutcome, b: &MergeOutcome) -> bool {
    a.merged == b.merged
        && a.to_local == b.to_local
        && a.to_remote == b.to_remote
        && a.conflicts == b.conflicts
        && a.report == b.report
}

impl World {
    fn new(n: usize, skews: &[i64], no_base: &[bool]) -> World {
        let init = initial();
        let mut written = BTreeSet::new();
        for (item, v) in [(0, "u0"), (0, "p0"), (1, "u1"), (1, "p1")] {
            let uid = if v.starts_with('u') { 10 } else { 11 };
            written.insert((ITEMS[item].to_owned(), uid, v.to_owned()));
        }
        World {
            remote: init.clone(),
            locals: vec![init.clone(); n],
            bases: (0..n)
                .map(|k| if no_base[k] { None } else { Some(init.clone()) })
                .collect(),
            skews: skews[..n].to_vec(),
            now: 10_000,
            counter: 0,
            written,
        }
    }

    fn clock(&self, rep: usize) -> i64 {
        T0 + self.now + self.skews[rep]
    }

    fn live(&self, rep: usize, item: usize) -> bool {
        col(&self.locals[rep], "item", &item_key(ITEMS[item]), "deleted") == Some(i(0))
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        self.now += 7;
        let n = self.locals.len();
        match *op {
            Op::Title { rep, item } if self.live(rep % n, item) => {
                let rep = rep % n;
                self.counter += 1;
                let at = self.clock(rep);
                let title = format!("title{}", self.counter);
                edit_item(
                    &mut self.locals[rep],
                    ITEMS[item],
                    &[("title", t(&title))],
                    at,
                );
            }
            Op::Field { rep, item, field } if self.live(rep % n, item) => {
                let rep = rep % n;
                self.counter += 1;
                let at = self.clock(rep);
                let v = format!("v{}", self.counter);
                edit_field(&mut self.locals[rep], ITEMS[item], UIDS[field], &v, at);
                self.written
                    .insert((ITEMS[item].to_owned(), UIDS[field], v));
                // Sometimes touch the unknown table too.
                if self.counter % 3 == 0 {
                    let pk = self.locals[rep].tables.get_mut("passkeys").unwrap();
                    pk.rows.insert(
                        item_key("P1"),
                        Row(vec![t("P1"), t(&format!("c{}", self.counter)), i(at), i(0)]),
                    );
                }
            }
            Op::Delete { rep, item } if self.live(rep % n, item) => {
                let rep = rep % n;
                let at = self.clock(rep);
                delete_item(&mut self.locals[rep], ITEMS[item], at);
            }
            Op::Trash { rep, item } if self.live(rep % n, item) => {
                let rep = rep % n;
                let k = item_key(ITEMS[item]);
                let now = col(&self.locals[rep], "item", &k, "trashed").and_then(|v| v.as_i64());
                let at = self.clock(rep);
                edit_item(
                    &mut self.locals[rep],
                    ITEMS[item],
                    &[("trashed", i(1 - now.unwrap_or(0)))],
                    at,
                );
            }
            Op::Move { rep, item, folder } if self.live(rep % n, item) => {
                let rep = rep % n;
                let at = self.clock(rep);
                move_item(&mut self.locals[rep], ITEMS[item], FOLDERS[folder], at);
            }
            Op::Add { rep, item } => {
                let rep = rep % n;
                if !has(&self.locals[rep], "item", &item_key(ITEMS[item])) {
                    self.counter += 1;
                    let at = self.clock(rep);
                    let (u, p) = (format!("u{}", self.counter), format!("p{}", self.counter));
                    add_login(&mut self.locals[rep], ITEMS[item], "added", &u, &p, at);
                    self.written.insert((ITEMS[item].to_owned(), 10, u));
                    self.written.insert((ITEMS[item].to_owned(), 11, p));
                }
            }
            Op::Sync { rep } => self.sync(rep % n)?,
            _ => {}
        }
        Ok(())
    }

    fn sync(&mut self, k: usize) -> Result<(), TestCaseError> {
        let b = self.bases[k].as_ref();
        let l = &self.locals[k];
        let r = &self.remote;
        let out = merge(b, l, r).expect("merge");
        let m = out.m();

        // Deterministic.
        prop_assert!(
            same_outcome(&out, &merge(b, l, r).unwrap()),
            "not deterministic"
        );
        // The streaming entry point (what the sync engine calls) gives the same
        // outcome without keeping the merged content, and its projections match the
        // merged content.
        let streamed = merge_sources(
            b.map(|x| x as &dyn RowSource),
            l,
            r,
            &MergeOptions::default(),
        )
        .unwrap();
        prop_assert!(streamed.merged.is_none());
        prop_assert!(
            same_changes(&out, &streamed),
            "merge_sources differs from merge"
        );
        prop_assert_eq!(streamed.live_items, live_items(l, r, m));
        prop_assert_eq!(&streamed.attachment_files, &attachment_files(m));
        // Symmetric in local/remote.
        let rev = merge(b, r, l).unwrap();
        prop_assert!(*rev.m() == *m, "not symmetric");
        prop_assert_eq!(&rev.to_local, &out.to_remote);
        // Idempotent: merge(x,x,x) = x, and merging the result again changes nothing.
        let same = merge(Some(m), m, m).unwrap();
        prop_assert!(*same.m() == *m && !same.local_needs_apply() && !same.remote_needs_upload());
        prop_assert!(
            merge(b, m, r).unwrap().merged.unwrap() == *m,
            "re-merge with remote changed the result"
        );
        prop_assert!(
            merge(b, l, m).unwrap().merged.unwrap() == *m,
            "re-merge with local changed the result"
        );
        // The change sets turn each side into the merged snapshot.
        prop_assert!(
            apply(l, &out.to_local) == *m,
            "to_local is not the difference"
        );
        prop_assert!(
            apply(r, &out.to_remote) == *m,
            "to_remote is not the difference"
        );
        prop_assert_eq!(out.remote_needs_upload(), r != m);

        for (name, mt) in &m.tables {
            let ci = mt.column_index("updated_at");
            for (key, mr) in &mt.rows {
                // Clocks never go backwards.
                if let Some(ci) = ci {
                    for side in [l, r] {
                        if let Some(sr) = row(side, name, key) {
                            prop_assert!(mr.0[ci] >= sr.0[ci], "{} updated_at went back", name);
                        }
                    }
                }
                // A field's hash always travels with its value.
                if name == "itemfield" {
                    let v = mt.get(mr, "value").unwrap().as_str().unwrap().to_owned();
                    prop_assert_eq!(mt.get(mr, "hash").unwrap(), &t(&hash(&v)));
                }
            }
        }
        // A delete is never undone by a stale replica: a row one side deleted is live
        // in the merge only if the other side changed it since base, later.
        for item in ITEMS {
            let key = item_key(item);
            let Some(md) = col(m, "item", &key, "deleted") else {
                continue;
            };
            for (del, other) in [(r, l), (l, r)] {
                if col(del, "item", &key, "deleted") == Some(i(1)) && md == i(0) {
                    let o = row(other, "item", &key).expect("live row comes from a side");
                    if let Some(b) = b {
                        prop_assert!(
                            row(b, "item", &key) != Some(o),
                            "stale replica undid a delete"
                        );
                    }
                    let (od, dd) = (
                        col(other, "item", &key, "updated_at").unwrap(),
                        col(del, "item", &key, "updated_at").unwrap(),
                    );
                    prop_assert!(od > dd, "an edit older than the delete revived the row");
                }
            }
        }
        let m = out.m().clone();
        self.locals[k] = m.clone();
        self.bases[k] = Some(m.clone());
        self.remote = m;
        Ok(())
    }

    fn check_end(&mut self) -> Result<(), TestCaseError> {
        // Everyone syncs twice in order: all converge to identical content.
        for _ in 0..2 {
            for k in 0..self.locals.len() {
                self.sync(k)?;
            }
        }
        for l in &self.locals {
            prop_assert!(*l == self.remote, "replicas did not converge");
        }
        // No edit lost: every value ever written is live or in its field's history.
        for (item, uid, v) in &self.written {
            let key = field_key(item, *uid);
            let live = col(&self.remote, "itemfield", &key, "value");
            let hist = history_of(&self.remote, item, *uid);
            prop_assert!(
                live.as_ref().and_then(|x| x.as_str()) == Some(v.as_str()) || hist.contains(v),
                "edit {} of {} lost",
                v,
                item
            );
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn replicas_syncing_in_random_orders_obey_the_merge_laws(
        n in 2usize..=6,
        skews in prop::collection::vec(skew(), 6),
        no_base in prop::collection::vec(prop::bool::weighted(0.2), 6),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let mut w = World::new(n, &skews, &no_base);
        for op in &ops {
            w.run(op)?;
        }
        w.check_end()?;
    }

    #[test]
    fn two_random_sides_merge_symmetrically_and_idempotently_without_base(
        skews in prop::collection::vec(skew(), 6),
        ops in prop::collection::vec(op(), 1..40),
    ) {
        // Two replicas that never synced: a two-way merge of whatever they became.
        let mut w = World::new(2, &skews, &[true; 6]);
        for op in ops.iter().filter(|o| !matches!(o, Op::Sync { .. })) {
            w.run(op)?;
        }
        let (l, r) = (&w.locals[0], &w.locals[1]);
        let out = merge(None, l, r).unwrap();
        prop_assert!(merge(None, r, l).unwrap().merged.unwrap() == *out.m());
        prop_assert!(merge(None, out.m(), r).unwrap().merged.unwrap() == *out.m());
        prop_assert!(merge(None, out.m(), out.m()).unwrap().merged.unwrap() == *out.m());
    }
}
