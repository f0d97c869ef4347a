//! Two diverged copies of the real Enpass vault (testdata/enpass-2020) merge
//! into vaults that open and show both sides' edits. Uses the vault crate's API:
//! open, edit, snapshot, apply.

mod common;

use std::path::{Path, PathBuf};

use common::Merged;

use syncfabric_merge::{history_values, merge, merge_sources, MergeOptions, Snapshot};
use syncfabric_vault::{field_type, NewItem, Secret, Vault};

const LOGIN: &str = "9b07477b-5da3-4242-b6de-d2f9d123ceeb";

fn testdata() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/enpass-2020");
    assert!(
        p.join("vault.enpassdb").exists(),
        "the real test vault is missing at {}",
        p.display()
    );
    p
}

fn copy_of(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for f in ["vault.json", "vault.enpassdb"] {
        std::fs::copy(testdata().join(f), dir.join(f)).unwrap();
    }
    dir.to_owned()
}

fn open(dir: &Path) -> Vault {
    Vault::open(dir, &Secret::from("mymasterpassword"), None).expect("open")
}

fn field_values(v: &Vault, item: &str, kind: &str) -> (String, Vec<String>) {
    let it = v.get_item(item).unwrap().expect("item");
    let f = it.field(kind).expect("field");
    (
        f.value.expose().to_owned(),
        f.history
            .iter()
            .map(|h| h.value.expose().to_owned())
            .collect(),
    )
}

/// The snapshot with every `history` cell re-serialised with sorted object keys.
fn normalized(s: &Snapshot) -> Snapshot {
    let mut s = s.clone();
    for t in s.tables.values_mut() {
        let Some(h) = t.column_index("history") else {
            continue;
        };
        for row in t.rows.values_mut() {
            if let Some(text) = row.0[h].as_str().filter(|x| !x.trim().is_empty()) {
                let v: serde_json::Value = serde_json::from_str(text).expect("history json");
                let sorted: Vec<std::collections::BTreeMap<String, serde_json::Value>> =
                    serde_json::from_value(v).expect("history entries");
                row.0[h] = syncfabric_merge::Value::Text(serde_json::to_string(&sorted).unwrap());
            }
        }
    }
    s
}

#[test]
fn two_diverged_copies_of_the_real_vault_merge_into_vaults_with_both_sides_edits() {
    let tmp = tempfile::tempdir().unwrap();
    let (da, db) = (
        copy_of(&tmp.path().join("a")),
        copy_of(&tmp.path().join("b")),
    );
    let mut a = open(&da);
    let mut b = open(&db);
    let base: Snapshot = a.snapshot().unwrap();
    assert_eq!(base, b.snapshot().unwrap());
    // The base as the sync engine keeps it: a copy of the database file.
    let base_file = tmp.path().join("base.enpassdb");
    a.copy_database_to(&base_file).unwrap();

    // Device A: renames the login, changes its password, adds an item.
    let mut it = a.get_item(LOGIN).unwrap().unwrap();
    it.title = "mylogin (renamed on A)".into();
    it.field_mut(field_type::PASSWORD).unwrap().value = Secret::from("pass-from-A");
    a.update_item(&it).unwrap();
    let new_a = a
        .add_item(NewItem::login(
            "new on A",
            "alice",
            Secret::from("pw-a"),
            "https://a.example",
        ))
        .unwrap();

    // Device B: changes the username and the same password, trashes nothing, adds an
    // item, files the login into a new folder.
    let mut it = b.get_item(LOGIN).unwrap().unwrap();
    it.field_mut(field_type::USERNAME).unwrap().value = Secret::from("user-from-B");
    it.field_mut(field_type::PASSWORD).unwrap().value = Secret::from("pass-from-B");
    b.update_item(&it).unwrap();
    let new_b = b
        .add_item(NewItem::login(
            "new on B",
            "bob",
            Secret::from("pw-b"),
            "https://b.example",
        ))
        .unwrap();
    let folder = b.create_folder("Work", None).unwrap();
    b.add_to_folder(&folder.uuid, LOGIN).unwrap();

    let (local, remote) = (a.snapshot().unwrap(), b.snapshot().unwrap());
    let out = merge(Some(&base), &local, &remote).unwrap();
    assert!(out.local_needs_apply() && out.remote_needs_upload());
    let report = out.report.to_string();
    for secret in ["pass-from-A", "pass-from-B", "mypassword", "pw-a", "pw-b"] {
        assert!(!report.contains(secret), "report leaks a password");
    }
    assert!(report.contains("mylogin (renamed on A)"), "{report}");

    // The path the sync engine takes: the base file and both vaults streamed by
    // `ORDER BY` cursors (decrypted row by row) gives exactly the same changes.
    {
        let base_src = syncfabric_vault::open_snapshot_file(&base_file, a.key()).unwrap();
        assert_eq!(base_src.to_snapshot().unwrap(), base);
        let (la, rb) = (a.rows().unwrap(), b.rows().unwrap());
        let streamed = merge_sources(Some(&base_src), &la, &rb, &MergeOptions::default()).unwrap();
        assert!(streamed.merged.is_none());
        assert_eq!(streamed.to_local, out.to_local);
        assert_eq!(streamed.to_remote, out.to_remote);
        assert_eq!(streamed.conflicts, out.conflicts);
        assert_eq!(streamed.report, out.report);
        assert_eq!(streamed.live_items, out.live_items);
        assert_eq!(streamed.live_items.merged, out.live_items.local + 1);
        assert_eq!(streamed.attachment_files, out.attachment_files);
    }

    a.apply(&out.to_local).unwrap();
    b.apply(&out.to_remote).unwrap();
    drop((a, b));

    // Both vaults open (page HMACs, integrity) and show both sides' edits.
    for dir in [&da, &db] {
        let v = open(dir);
        v.verify().unwrap();
        let it = v.get_item(LOGIN).unwrap().unwrap();
        assert_eq!(it.title, "mylogin (renamed on A)");
        assert!(it.is_live());
        assert_eq!(
            field_values(&v, LOGIN, field_type::USERNAME).0,
            "user-from-B"
        );
        let (pass, hist) = field_values(&v, LOGIN, field_type::PASSWORD);
        assert!(pass == "pass-from-A" || pass == "pass-from-B");
        let mut all = hist.clone();
        all.push(pass);
        for p in ["pass-from-A", "pass-from-B", "mypassword"] {
            assert!(all.iter().any(|x| x == p), "a password value was lost");
        }
        assert!(v
            .get_item(&new_a.uuid)
            .unwrap()
            .is_some_and(|i| i.is_live()));
        assert!(v
            .get_item(&new_b.uuid)
            .unwrap()
            .is_some_and(|i| i.is_live()));
        assert!(v
            .folder_items(&folder.uuid)
            .unwrap()
            .contains(&LOGIN.to_owned()));
        // The deleted item of the real vault stays deleted.
        assert!(!v
            .get_item("432aeda5-4715-407c-a55f-4068f801a814")
            .unwrap()
            .unwrap()
            .is_live());
    }

    // The two vaults now hold the merged content, and a second sync changes nothing.
    let (sa, sb) = (open(&da).snapshot().unwrap(), open(&db).snapshot().unwrap());
    // (Compared with history entries' keys in one order: the vault's snapshot writes
    // them as {"value","updated_at"}, the merge as {"updated_at","value"}.)
    assert_eq!(normalized(&sa), normalized(out.m()));
    assert_eq!(normalized(&sb), normalized(out.m()));
    let again = merge(Some(out.m()), &sa, &sb).unwrap();
    assert!(!again.local_needs_apply() && !again.remote_needs_upload());
    let hist = history_values(
        out.m()
            .table("itemfield")
            .unwrap()
            .rows
            .iter()
            .find(|(k, _)| k.0[0].as_str() == Some(LOGIN) && k.0[1].as_i64() == Some(11))
            .map(|(_, r)| {
                &r.0[out
                    .m()
                    .table("itemfield")
                    .unwrap()
                    .column_index("history")
                    .unwrap()]
            })
            .unwrap(),
    );
    assert!(hist.contains(&"mypassword".to_owned()));
}
