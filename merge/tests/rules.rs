//! One test per merge rule, on snapshots with the real Enpass schema.

mod common;

use common::*;
use syncfabric_merge::{merge, Deletion, MergeError, Side, Snapshot, Table, Winner};

const A: &str = "9b07477b-5da3-4242-b6de-d2f9d123ceeb";
const B: &str = "432aeda5-4715-407c-a55f-4068f801a814";
const T0: i64 = 1_607_085_617;

fn base() -> Snapshot {
    let mut s = empty();
    add_login(&mut s, A, "mylogin", "myusername", "mypassword", T0);
    add_login(&mut s, B, "other", "bob", "hunter2", T0);
    put(
        &mut s,
        "folder",
        &[
            ("uuid", t("F1")),
            ("title", t("Work")),
            ("updated_at", i(T0)),
        ],
    );
    put(
        &mut s,
        "folder",
        &[
            ("uuid", t("F2")),
            ("title", t("Home")),
            ("updated_at", i(T0)),
        ],
    );
    put(
        &mut s,
        "folder_items",
        &[
            ("folder_uuid", t("F1")),
            ("item_uuid", t(A)),
            ("updated_at", i(T0)),
        ],
    );
    s
}

/// Merges both ways round and checks the merged content is the same.
fn both_ways(b: Option<&Snapshot>, l: &Snapshot, r: &Snapshot) -> syncfabric_merge::MergeOutcome {
    let out = merge(b, l, r).unwrap();
    let rev = merge(b, r, l).unwrap();
    assert_eq!(out.m(), rev.m(), "merge is not symmetric");
    // The streaming entry point: the same changes, no merged content kept.
    let owned = syncfabric_merge::merge_sources(
        b.map(|x| x as &dyn syncfabric_merge::RowSource),
        l,
        r,
        &syncfabric_merge::MergeOptions::default(),
    )
    .unwrap();
    assert!(owned.merged.is_none());
    assert_eq!(owned.to_local, out.to_local);
    assert_eq!(owned.to_remote, out.to_remote);
    assert_eq!(owned.conflicts, out.conflicts);
    assert_eq!(owned.report, out.report);
    out
}

#[test]
fn identical_sides_change_nothing() {
    let b = base();
    let out = merge(Some(&b), &b, &b).unwrap();
    assert_eq!(out.m(), &b);
    assert!(!out.local_needs_apply());
    assert!(!out.remote_needs_upload());
    assert!(out.conflicts.is_empty());
    assert!(out.report.is_empty());
}

#[test]
fn one_side_edit_wins_and_only_the_other_side_is_written() {
    let b = base();
    let mut l = b.clone();
    edit_item(&mut l, A, &[("title", t("renamed"))], T0 + 10);
    let out = both_ways(Some(&b), &l, &b);
    assert_eq!(get(out.m(), "item", &item_key(A), "title"), t("renamed"));
    assert!(!out.local_needs_apply());
    assert!(out.remote_needs_upload());
    assert_eq!(out.to_remote.tables["item"].rows.len(), 1);
    assert!(out.conflicts.is_empty());
}

#[test]
fn clock_skew_a_device_an_hour_behind_still_wins_when_only_it_changed() {
    let b = base();
    let mut r = b.clone();
    // The remote device's clock is an hour behind: its edit carries an older time.
    edit_field(&mut r, A, 11, "newpass", T0 - 3600);
    let out = both_ways(Some(&b), &b, &r);
    let k = field_key(A, 11);
    assert_eq!(get(out.m(), "itemfield", &k, "value"), t("newpass"));
    assert_eq!(get(out.m(), "itemfield", &k, "hash"), t(&hash("newpass")));
    // The merged clocks are not behind either side, so the row propagates.
    assert!(
        get(out.m(), "itemfield", &k, "updated_at")
            .as_i64()
            .unwrap()
            >= T0
    );
    assert!(
        get(out.m(), "item", &item_key(A), "updated_at")
            .as_i64()
            .unwrap()
            >= T0
    );
    assert!(out.conflicts.is_empty());
    assert!(out.local_needs_apply());
}

#[test]
fn conflicting_password_edits_later_wins_and_loser_goes_to_history() {
    let b = base();
    let mut l = b.clone();
    let mut r = b.clone();
    edit_field(&mut l, A, 11, "local-pass", T0 + 100);
    edit_field(&mut r, A, 11, "remote-pass", T0 + 200);
    let out = both_ways(Some(&b), &l, &r);
    let k = field_key(A, 11);
    assert_eq!(get(out.m(), "itemfield", &k, "value"), t("remote-pass"));
    assert_eq!(
        get(out.m(), "itemfield", &k, "hash"),
        t(&hash("remote-pass"))
    );
    let hist = history_of(out.m(), A, 11);
    assert!(
        hist.contains(&"local-pass".to_owned()),
        "loser kept: {}",
        hist.len()
    );
    assert!(
        hist.contains(&"mypassword".to_owned()),
        "both sides' history kept"
    );
    assert_eq!(
        hist.iter().filter(|v| *v == "mypassword").count(),
        1,
        "deduplicated"
    );
    let c = out
        .conflicts
        .iter()
        .find(|c| c.table == "itemfield")
        .expect("field conflict");
    assert_eq!(c.winner, Winner::Remote);
    assert_eq!(c.loser_in_history, Some(true));
    assert!(c.columns.contains(&"value".to_owned()) && c.columns.contains(&"hash".to_owned()));
    // Merging the result again changes nothing.
    let again = merge(Some(&b), out.m(), &r).unwrap();
    assert_eq!(again.m(), out.m());
}

#[test]
fn equal_timestamps_with_different_content_break_ties_by_content() {
    let b = base();
    let mut l = b.clone();
    let mut r = b.clone();
    edit_field(&mut l, A, 11, "aaa", T0 + 50);
    edit_field(&mut r, A, 11, "zzz", T0 + 50);
    let out = both_ways(Some(&b), &l, &r);
    let k = field_key(A, 11);
    // Greater content wins, whichever side it is on.
    assert_eq!(get(out.m(), "itemfield", &k, "value"), t("zzz"));
    assert_eq!(get(out.m(), "itemfield", &k, "hash"), t(&hash("zzz")));
    assert!(history_of(out.m(), A, 11).contains(&"aaa".to_owned()));
    let c = out
        .conflicts
        .iter()
        .find(|c| c.table == "itemfield")
        .unwrap();
    assert_eq!(c.winner, Winner::Tie);
    // And the same with item meta.
    let mut l2 = b.clone();
    let mut r2 = b.clone();
    edit_item(&mut l2, A, &[("title", t("Beta"))], T0 + 9);
    edit_item(&mut r2, A, &[("title", t("Alpha"))], T0 + 9);
    let out = both_ways(Some(&b), &l2, &r2);
    assert_eq!(get(out.m(), "item", &item_key(A), "title"), t("Beta"));
}

#[test]
fn edit_after_delete_revives_both_ways_round() {
    let b = base();
    let mut del = b.clone();
    let mut ed = b.clone();
    delete_item(&mut del, A, T0 + 100);
    edit_item(&mut ed, A, &[("title", t("still needed"))], T0 + 200);
    for (l, r, deleter) in [(&del, &ed, Side::Local), (&ed, &del, Side::Remote)] {
        let out = both_ways(Some(&b), l, r);
        let k = item_key(A);
        assert_eq!(get(out.m(), "item", &k, "deleted"), i(0));
        assert_eq!(get(out.m(), "item", &k, "title"), t("still needed"));
        assert_eq!(get(out.m(), "item", &k, "updated_at"), i(T0 + 200));
        let c = out.conflicts.iter().find(|c| c.table == "item").unwrap();
        assert_eq!(
            c.deletion,
            Some(Deletion::Revived {
                deleted_by: deleter
            })
        );
    }
}

#[test]
fn delete_after_edit_wins_both_ways_round_and_keeps_the_edit_in_the_tombstone() {
    let b = base();
    let mut del = b.clone();
    let mut ed = b.clone();
    edit_item(&mut ed, A, &[("title", t("edited first"))], T0 + 100);
    delete_item(&mut del, A, T0 + 200);
    for (l, r, deleter) in [(&del, &ed, Side::Local), (&ed, &del, Side::Remote)] {
        let out = both_ways(Some(&b), l, r);
        let k = item_key(A);
        assert_eq!(get(out.m(), "item", &k, "deleted"), i(1));
        assert_eq!(get(out.m(), "item", &k, "title"), t("edited first"));
        assert_eq!(
            get(out.m(), "folder_items", &fi_key("F1", A), "deleted"),
            i(1)
        );
        let c = out.conflicts.iter().find(|c| c.table == "item").unwrap();
        assert_eq!(
            c.deletion,
            Some(Deletion::StayedDeleted {
                deleted_by: deleter
            })
        );
    }
}

#[test]
fn equal_time_delete_and_edit_the_delete_wins() {
    let b = base();
    let mut del = b.clone();
    let mut ed = b.clone();
    delete_item(&mut del, A, T0 + 100);
    edit_item(&mut ed, A, &[("favorite", i(1))], T0 + 100);
    let out = both_ways(Some(&b), &del, &ed);
    assert_eq!(get(out.m(), "item", &item_key(A), "deleted"), i(1));
    assert_eq!(get(out.m(), "item", &item_key(A), "favorite"), i(1));
}

#[test]
fn a_stale_replica_never_undoes_a_delete_even_with_a_later_clock() {
    let b = base();
    let mut r = b.clone();
    delete_item(&mut r, A, T0 + 5);
    // The local device did not touch the item, though its clock is far ahead.
    let mut l = b.clone();
    edit_item(&mut l, B, &[("title", t("x"))], T0 + 99_999);
    let out = both_ways(Some(&b), &l, &r);
    assert_eq!(get(out.m(), "item", &item_key(A), "deleted"), i(1));
}

#[test]
fn a_row_missing_on_one_side_is_not_a_delete() {
    let b = base();
    let mut l = b.clone();
    l.tables.get_mut("item").unwrap().rows.remove(&item_key(B));
    let mut r = b.clone();
    edit_item(&mut r, B, &[("title", t("kept"))], T0 + 1);
    let out = both_ways(Some(&b), &l, &r);
    assert_eq!(get(out.m(), "item", &item_key(B), "title"), t("kept"));
    assert_eq!(get(out.m(), "item", &item_key(B), "deleted"), i(0));
    // Missing on both sides: base's row is kept, not dropped.
    let mut r2 = b.clone();
    r2.tables.get_mut("item").unwrap().rows.remove(&item_key(B));
    let out = both_ways(Some(&b), &l, &r2);
    assert!(has(out.m(), "item", &item_key(B)));
}

#[test]
fn title_edit_on_one_side_and_trash_on_the_other_keeps_both() {
    let b = base();
    let mut l = b.clone();
    let mut r = b.clone();
    edit_item(&mut l, A, &[("title", t("Google"))], T0 + 300);
    edit_item(&mut r, A, &[("trashed", i(1))], T0 + 100);
    let out = both_ways(Some(&b), &l, &r);
    let k = item_key(A);
    assert_eq!(get(out.m(), "item", &k, "title"), t("Google"));
    assert_eq!(get(out.m(), "item", &k, "trashed"), i(1));
    assert_eq!(get(out.m(), "item", &k, "updated_at"), i(T0 + 300));
    assert!(
        out.conflicts.is_empty(),
        "disjoint columns are not a conflict"
    );
    assert!(out.local_needs_apply() && out.remote_needs_upload());
}

#[test]
fn move_on_one_side_and_edit_on_the_other() {
    let b = base();
    let mut l = b.clone();
    let mut r = b.clone();
    move_item(&mut l, A, "F2", T0 + 10);
    edit_field(&mut r, A, 10, "new-user", T0 + 20);
    edit_item(&mut r, A, &[("title", t("moved+edited"))], T0 + 20);
    let out = both_ways(Some(&b), &l, &r);
    assert_eq!(
        get(out.m(), "folder_items", &fi_key("F1", A), "deleted"),
        i(1)
    );
    assert_eq!(
        get(out.m(), "folder_items", &fi_key("F2", A), "deleted"),
        i(0)
    );
    assert_eq!(
        get(out.m(), "item", &item_key(A), "title"),
        t("moved+edited")
    );
    assert_eq!(
        get(out.m(), "itemfield", &field_key(A, 10), "value"),
        t("new-user")
    );
}

#[test]
fn moves_to_different_folders_on_both_sides_are_both_kept_as_rows() {
    let b = base();
    let mut l = b.clone();
    let mut r = b.clone();
    put(
        &mut r,
        "folder",
        &[
            ("uuid", t("F3")),
            ("title", t("Bank")),
            ("updated_at", i(T0 + 5)),
        ],
    );
    move_item(&mut l, A, "F2", T0 + 10);
    move_item(&mut r, A, "F3", T0 + 20);
    let out = both_ways(Some(&b), &l, &r);
    // Memberships are rows keyed by (folder, item): both moves land, the old one is gone.
    assert_eq!(
        get(out.m(), "folder_items", &fi_key("F1", A), "deleted"),
        i(1)
    );
    assert_eq!(
        get(out.m(), "folder_items", &fi_key("F2", A), "deleted"),
        i(0)
    );
    assert_eq!(
        get(out.m(), "folder_items", &fi_key("F3", A), "deleted"),
        i(0)
    );
    assert!(has(out.m(), "folder", &item_key("F3")));
}

#[test]
fn attachments_added_on_one_side_and_payload_conflicts_stay_consistent() {
    let b = base();
    let mut l = b.clone();
    let att = |s: &mut Snapshot, data: &[u8], at: i64| {
        put(
            s,
            "attachment",
            &[
                ("uuid", t("AT1")),
                ("item_uuid", t(A)),
                ("name", t("scan.pdf")),
                ("size", i(data.len() as i64)),
                ("mime", t("application/pdf")),
                ("data", syncfabric_merge::Value::Blob(data.to_vec())),
                ("updated_at", i(at)),
            ],
        );
    };
    att(&mut l, b"0123456789", T0 + 1);
    let out = both_ways(Some(&b), &l, &b);
    assert!(has(out.m(), "attachment", &item_key("AT1")));
    assert_eq!(out.to_remote.tables["attachment"].rows.len(), 1);

    let mut r = b.clone();
    att(&mut r, b"abc", T0 + 2);
    let out = both_ways(None, &l, &r);
    // The later payload wins as a whole: size matches data.
    assert_eq!(get(out.m(), "attachment", &item_key("AT1"), "size"), i(3));
    assert_eq!(
        get(out.m(), "attachment", &item_key("AT1"), "data"),
        syncfabric_merge::Value::Blob(b"abc".to_vec())
    );
}

#[test]
fn unknown_table_merges_by_the_same_rules() {
    let mut b = base();
    b.tables.insert(
        "passkeys".into(),
        Table::new(
            ["uuid", "rp", "credential", "updated_at", "deleted"]
                .map(String::from)
                .to_vec(),
            vec!["uuid".into()],
        ),
    );
    let row = |rp: &str, cred: &str, at: i64, del: i64| {
        syncfabric_merge::Row(vec![t("P1"), t(rp), t(cred), i(at), i(del)])
    };
    b.tables
        .get_mut("passkeys")
        .unwrap()
        .rows
        .insert(item_key("P1"), row("example.com", "c0", T0, 0));
    let mut l = b.clone();
    let mut r = b.clone();
    l.tables
        .get_mut("passkeys")
        .unwrap()
        .rows
        .insert(item_key("P1"), row("example.com", "c-local", T0 + 20, 0));
    r.tables
        .get_mut("passkeys")
        .unwrap()
        .rows
        .insert(item_key("P1"), row("example.org", "c-remote", T0 + 10, 0));
    let out = both_ways(Some(&b), &l, &r);
    // rp changed on remote only: remote's; credential changed on both: later (local).
    assert_eq!(
        get(out.m(), "passkeys", &item_key("P1"), "rp"),
        t("example.org")
    );
    assert_eq!(
        get(out.m(), "passkeys", &item_key("P1"), "credential"),
        t("c-local")
    );
    // Delete vs older edit in the unknown table: the delete wins.
    let mut d = b.clone();
    d.tables
        .get_mut("passkeys")
        .unwrap()
        .rows
        .insert(item_key("P1"), row("example.com", "c0", T0 + 30, 1));
    let out = both_ways(Some(&b), &d, &r);
    assert_eq!(get(out.m(), "passkeys", &item_key("P1"), "deleted"), i(1));
    // A table only one side has is taken whole.
    let mut only = empty();
    only.tables
        .insert("passkeys".into(), l.tables["passkeys"].clone());
    let out = both_ways(None, &only, &empty());
    assert_eq!(out.m().tables["passkeys"].rows.len(), 1);
}

#[test]
fn two_way_without_base_uses_timestamps() {
    let b = base();
    let mut l = b.clone();
    let mut r = b.clone();
    edit_item(&mut l, A, &[("title", t("older"))], T0 + 1);
    edit_item(&mut r, A, &[("title", t("newer"))], T0 + 2);
    edit_field(&mut l, B, 11, "only-local", T0 + 3);
    add_login(&mut r, "new-item", "fresh", "u", "p", T0 + 4);
    let out = both_ways(None, &l, &r);
    assert_eq!(get(out.m(), "item", &item_key(A), "title"), t("newer"));
    // Without base the local-only edit still wins: it is the later row.
    assert_eq!(
        get(out.m(), "itemfield", &field_key(B, 11), "value"),
        t("only-local")
    );
    assert!(has(out.m(), "item", &item_key("new-item")));
}

#[test]
fn both_sides_changing_history_unions_it() {
    let b = base();
    let mut l = b.clone();
    let mut r = b.clone();
    edit_field(&mut l, A, 11, "p1", T0 + 1);
    edit_field(&mut l, A, 11, "p2", T0 + 2);
    edit_field(&mut r, A, 11, "q1", T0 + 3);
    let out = both_ways(Some(&b), &l, &r);
    let hist = history_of(out.m(), A, 11);
    for v in ["mypassword", "p1", "p2"] {
        assert!(hist.contains(&v.to_owned()), "{v} kept");
    }
    assert_eq!(
        get(out.m(), "itemfield", &field_key(A, 11), "value"),
        t("q1")
    );
    let m = merge(Some(out.m()), out.m(), out.m()).unwrap();
    assert_eq!(m.m(), out.m());
}

#[test]
fn columns_only_one_side_has_are_kept() {
    let b = base();
    let mut r = b.clone();
    // A newer app version on the remote added a column.
    let tb = r.tables.get_mut("folder").unwrap();
    tb.columns.push("color".into());
    for row in tb.rows.values_mut() {
        row.0.push(t("red"));
    }
    let out = both_ways(Some(&b), &b, &r);
    let f = &out.m().tables["folder"];
    assert!(f.columns.contains(&"color".to_owned()));
    assert_eq!(get(out.m(), "folder", &item_key("F1"), "color"), t("red"));
    assert!(out.local_needs_apply());
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let b = base();
    let mut bad = b.clone();
    bad.tables
        .get_mut("item")
        .unwrap()
        .rows
        .get_mut(&item_key(A))
        .unwrap()
        .0
        .pop();
    assert!(matches!(
        merge(Some(&b), &bad, &b).unwrap_err(),
        MergeError::MalformedRow { table } if table == "item"
    ));
    let mut other_key = b.clone();
    other_key.tables.get_mut("folder").unwrap().key_columns = vec!["title".into()];
    assert!(matches!(
        merge(Some(&b), &b, &other_key).unwrap_err(),
        MergeError::KeyMismatch { table } if table == "folder"
    ));
    let mut missing = b.clone();
    missing.tables.get_mut("folder").unwrap().key_columns = vec!["nope".into()];
    assert!(matches!(
        merge(None, &missing, &missing),
        Err(MergeError::MissingKeyColumn { .. })
    ));
}

/// A source that yields one table's rows in the order given (a database whose text
/// order differs from the merge's would look like this).
struct InOrder(
    Vec<(syncfabric_merge::RowKey, syncfabric_merge::Row)>,
    Table,
);

struct VecCursor<'a> {
    rows: &'a [(syncfabric_merge::RowKey, syncfabric_merge::Row)],
    at: Option<usize>,
}

impl syncfabric_merge::RowCursor for VecCursor<'_> {
    fn advance(&mut self) -> syncfabric_vault::Result<bool> {
        let next = self.at.map_or(0, |i| i + 1);
        self.at = Some(next);
        Ok(next < self.rows.len())
    }
    fn current(&self) -> Option<(&syncfabric_merge::RowKey, &syncfabric_merge::Row)> {
        self.at.and_then(|i| self.rows.get(i)).map(|(k, r)| (k, r))
    }
}

impl syncfabric_merge::RowSource for InOrder {
    fn schema(&self) -> syncfabric_vault::Result<Vec<syncfabric_merge::TableSchema>> {
        Ok(vec![syncfabric_merge::TableSchema {
            name: "item".into(),
            columns: self.1.columns.clone(),
            key_columns: self.1.key_columns.clone(),
        }])
    }
    fn scan(
        &self,
        table: &str,
        f: &mut dyn FnMut(&mut dyn syncfabric_merge::RowCursor),
    ) -> syncfabric_vault::Result<()> {
        let rows = if table == "item" { &self.0[..] } else { &[] };
        f(&mut VecCursor { rows, at: None });
        Ok(())
    }
}

#[test]
fn a_source_out_of_key_order_is_an_error_not_a_wrong_merge() {
    let b = base();
    let items = &b.tables["item"];
    let mut rows: Vec<_> = items
        .rows
        .iter()
        .map(|(k, r)| (k.clone(), r.clone()))
        .collect();
    rows.reverse();
    let bad = InOrder(rows.clone(), items.clone());
    let err =
        syncfabric_merge::merge_sources(None, &b, &bad, &syncfabric_merge::MergeOptions::default())
            .unwrap_err();
    assert!(
        matches!(&err, MergeError::Unsorted { side: syncfabric_merge::SourceSide::Remote, table } if table == "item"),
        "{err}"
    );
    // The same rows in order merge fine (and the source is otherwise sound).
    rows.reverse();
    let good = InOrder(rows, items.clone());
    let out = syncfabric_merge::merge_sources(
        None,
        &b,
        &good,
        &syncfabric_merge::MergeOptions::default(),
    )
    .unwrap();
    assert!(!out.local_needs_apply());
}

#[test]
fn the_report_names_items_and_fields_but_never_values() {
    let b = base();
    let mut l = b.clone();
    let mut r = b.clone();
    edit_field(&mut l, A, 11, "S3cret-local", T0 + 100);
    edit_field(&mut r, A, 11, "S3cret-remote", T0 + 200);
    edit_item(&mut l, A, &[("note", t("S3cret-note"))], T0 + 150);
    delete_item(&mut r, B, T0 + 5);
    let out = merge(Some(&b), &l, &r).unwrap();
    let text = out.report.to_string();
    eprintln!("{text}");
    let debug = format!("{out:?}");
    for secret in ["S3cret", "mypassword", "hunter2"] {
        assert!(!text.contains(secret), "report leaks a value");
        assert!(!debug.contains(secret), "Debug leaks a value");
    }
    assert!(
        text.contains("field \"Password\" of item \"mylogin\""),
        "{text}"
    );
    assert!(text.contains("history"), "{text}");
    assert!(text.contains("note"), "{text}");
    assert!(text.contains("item \"other\""), "{text}");
    assert!(text.contains("remote's edit is later"), "{text}");
}

/// Rule 6 when the base already holds an older delete: C deleted at +300 and folded
/// A's delete (+100) into its copy; its commit did not land, but the download was
/// recorded as its base. B's edit at +200 revived the item against A's delete. C's next
/// merge sees an undelete on the remote and its own (later) tombstone changed locally:
/// delete against edit by the clocks, so its later delete stands; an undelete later
/// than C's delete still revives. (Found by the never-lose run over the Wi-Fi Sync
/// Server: the undelete used to win as "the only change of the flag".)
#[test]
fn a_later_delete_on_a_deleted_base_is_not_undone_by_an_older_undelete() {
    let mut b = base();
    delete_item(&mut b, A, T0 + 100);
    let mut c = b.clone();
    delete_item(&mut c, A, T0 + 300);
    for (revived_at, stays_deleted) in [(T0 + 200, true), (T0 + 300, true), (T0 + 400, false)] {
        let mut revived = b.clone();
        edit_item(
            &mut revived,
            A,
            &[("deleted", i(0)), ("title", t("edited by B"))],
            revived_at,
        );
        let out = both_ways(Some(&b), &c, &revived);
        let k = item_key(A);
        let want = if stays_deleted { 1 } else { 0 };
        assert_eq!(get(out.m(), "item", &k, "deleted"), i(want), "{revived_at}");
        // Either way B's edit is kept in the row.
        assert_eq!(get(out.m(), "item", &k, "title"), t("edited by B"));
    }
}
