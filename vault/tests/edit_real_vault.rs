//! A copy of the real vault edited by syncfabric re-opens, keeps everything it did not
//! touch, and passes integrity_check; an independent reader (sqlcipher CLI) agrees.

mod common;
use common::*;
use syncfabric_vault::{field_type, Error, NewItem, Secret, Snapshot, Value, Vault};

/// Every row of every table, as text, from the sqlcipher CLI (independent reader).
fn cli_dump(dir: &std::path::Path, key_hex: &str, table: &str) -> Vec<String> {
    let out = sqlcipher_cli(
        &dir.join("vault.enpassdb"),
        key_hex,
        &format!(".mode insert x\nSELECT * FROM {table} ORDER BY ID;"),
    );
    out.lines().map(str::to_owned).collect()
}

#[test]
fn edited_copy_of_real_vault_keeps_untouched_data() {
    let (_td, dir) = copy_real_vault();
    let tables = [
        "Identity",
        "vault_info",
        "versions",
        "preferences",
        "folder",
        "template",
        "category",
        "password_history",
        "custom_icon",
        "share_info",
    ];
    let before: Vec<Vec<String>> = tables
        .iter()
        .map(|t| cli_dump(&dir, REAL_RAW_KEY, t))
        .collect();
    let fields_before = cli_dump(&dir, REAL_RAW_KEY, "itemfield");

    let pw = Secret::new(REAL_PASSWORD);
    let mut v = Vault::open(&dir, &pw, None).unwrap();
    // add
    let added = v
        .add_item(NewItem::login(
            "new one",
            "alice",
            Secret::new("s3cret!pw"),
            "https://example.org/login",
        ))
        .unwrap();
    // edit the real live item: change its password and title
    let mut live = v.get_item(LIVE_UUID).unwrap().unwrap();
    let old_updated = live.updated_at;
    live.title = "mylogin renamed".into();
    live.field_mut(field_type::PASSWORD).unwrap().value = Secret::new("newpassword");
    let edited = v.update_item(&live).unwrap();
    assert!(edited.updated_at >= old_updated);
    let pwf = edited.field(field_type::PASSWORD).unwrap();
    assert_eq!(pwf.value.expose(), "newpassword");
    assert_eq!(pwf.history.len(), 1);
    assert_eq!(pwf.history[0].value.expose(), "mypassword");
    // trash the new one, then delete it
    v.trash_item(&added.uuid).unwrap();
    assert!(v.get_item(&added.uuid).unwrap().unwrap().trashed);
    v.untrash_item(&added.uuid).unwrap();
    v.trash_item(&added.uuid).unwrap();
    v.delete_item(&added.uuid).unwrap();
    let f = v.create_folder("Work", None).unwrap();
    v.add_to_folder(&f.uuid, LIVE_UUID).unwrap();
    assert_eq!(v.folder_items(&f.uuid).unwrap(), vec![LIVE_UUID.to_owned()]);
    v.verify().unwrap();
    drop(v);

    // Re-open: everything as written.
    let v = Vault::open(&dir, &pw, None).unwrap();
    let items = v.items().unwrap();
    assert_eq!(items.len(), 3, "never hard-deletes");
    let del = items.iter().find(|i| i.uuid == added.uuid).unwrap();
    assert!(del.deleted);
    assert_eq!(
        del.field(field_type::PASSWORD).unwrap().value.expose(),
        "s3cret!pw"
    );
    let live = items.iter().find(|i| i.uuid == LIVE_UUID).unwrap();
    assert_eq!(live.title, "mylogin renamed");
    assert_eq!(
        live.field(field_type::PASSWORD).unwrap().value.expose(),
        "newpassword"
    );
    assert_eq!(
        live.field(field_type::USERNAME).unwrap().value.expose(),
        "myusername"
    );
    for it in &items {
        for fl in &it.fields {
            let want = if fl.value.is_empty() {
                String::new()
            } else {
                hex::encode(openssl::sha::sha1(fl.value.expose().as_bytes()))
            };
            assert_eq!(fl.hash, want);
        }
    }
    v.verify().unwrap();
    drop(v);

    // Untouched tables are byte-identical as seen by the sqlcipher CLI.
    let after: Vec<Vec<String>> = tables
        .iter()
        .take(8)
        .map(|t| cli_dump(&dir, REAL_RAW_KEY, t))
        .collect();
    for (i, t) in tables.iter().take(8).enumerate() {
        if *t == "folder" {
            continue;
        }
        assert_eq!(before[i], after[i], "table {t} changed");
    }
    // The deleted real item's fields are untouched (same rows, same ciphertext).
    let fields_after = cli_dump(&dir, REAL_RAW_KEY, "itemfield");
    for line in fields_before.iter().filter(|l| l.contains(DELETED_UUID)) {
        assert!(
            fields_after.contains(line),
            "deleted item's field changed: {line}"
        );
    }
    let ic = sqlcipher_cli(
        &dir.join("vault.enpassdb"),
        REAL_RAW_KEY,
        "PRAGMA integrity_check;",
    );
    assert_eq!(ic.trim(), "ok");
    // vault.json: unknown/untouched keys kept, counts and last_modified updated.
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("vault.json")).unwrap()).unwrap();
    assert_eq!(meta["vault_items_count"], 1);
    assert_eq!(meta["creating_device"], "django");
    assert!(meta["last_modified_time"].as_i64().unwrap() > 1607451151);
}

#[test]
fn snapshot_apply_round_trip() {
    let (_td, dir) = copy_real_vault();
    let pw = Secret::new(REAL_PASSWORD);
    let mut v = Vault::open(&dir, &pw, None).unwrap();
    let s0 = v.snapshot().unwrap();
    // Decrypted values in the snapshot.
    let f = s0.table("itemfield").unwrap();
    let pw_vals: Vec<&str> = f
        .rows
        .values()
        .filter(|r| f.get(r, "type").and_then(Value::as_str) == Some("password"))
        .filter_map(|r| f.get(r, "value").and_then(Value::as_str))
        .collect();
    assert!(pw_vals.contains(&"mypassword") && pw_vals.contains(&"here"));
    assert!(s0.table("item").unwrap().column_index("key").is_none());
    assert!(s0.table("item").unwrap().column_index("ID").is_none());
    assert_eq!(
        s0.table("itemfield").unwrap().key_columns,
        vec!["item_uuid", "item_field_uid"]
    );
    assert_eq!(s0.table("Identity").unwrap().key_columns, vec!["ID"]);
    // Applying the same snapshot changes nothing.
    let r = v.apply(&s0).unwrap();
    assert!(r.is_empty(), "{r:?}");

    // Make a copy with edits, apply it to a second copy, compare snapshots.
    let (_td2, dir2) = copy_real_vault();
    let mut v2 = Vault::open(&dir2, &pw, None).unwrap();
    let mut it = v.get_item(LIVE_UUID).unwrap().unwrap();
    it.field_mut(field_type::PASSWORD).unwrap().value = Secret::new("rotated");
    v.update_item(&it).unwrap();
    v.add_item(NewItem::login("x", "y", Secret::new("zz"), ""))
        .unwrap();
    let s1 = v.snapshot().unwrap();
    let key_before = item_key_blob(&v2, LIVE_UUID);
    let r = v2.apply(&s1).unwrap();
    assert_eq!(r.inserted.get("item"), Some(&1));
    assert_eq!(r.rekeyed_items, 2);
    assert_ne!(
        key_before,
        item_key_blob(&v2, LIVE_UUID),
        "changed item got a fresh key"
    );
    let s2 = v2.snapshot().unwrap();
    assert_eq!(s1, s2);
    drop(v2);
    let v2 = Vault::open(&dir2, &pw, None).unwrap();
    assert_eq!(
        v2.get_item(LIVE_UUID)
            .unwrap()
            .unwrap()
            .field(field_type::PASSWORD)
            .unwrap()
            .value
            .expose(),
        "rotated"
    );
    // The file read through read_snapshot_file agrees.
    let s3 = syncfabric_vault::read_snapshot_file(v2.db_path(), v2.key()).unwrap();
    assert_eq!(s3, s2);
    assert!(!format!("{s3:?}").contains("rotated"));
}

fn item_key_blob(v: &Vault, uuid: &str) -> Vec<u8> {
    v.connection()
        .query_row("SELECT key FROM item WHERE uuid=?1", [uuid], |r| r.get(0))
        .unwrap()
}

#[test]
fn read_snapshot_file_rejects_other_salt() {
    let (_td, dir) = copy_real_vault();
    let v = Vault::open(&dir, &Secret::new(REAL_PASSWORD), None).unwrap();
    let other = syncfabric_vault::VaultKey::from_raw(*v.key().expose_raw(), [7; 16]);
    assert!(matches!(
        syncfabric_vault::read_snapshot_file(v.db_path(), &other),
        Err(Error::KeyChanged)
    ));
    let wrong = syncfabric_vault::VaultKey::from_raw([1; 32], v.key().salt());
    assert!(matches!(
        syncfabric_vault::verify_database_file(v.db_path(), &wrong),
        Err(Error::WrongKey)
    ));
    let _: Snapshot = v.snapshot().unwrap();
}

#[test]
fn copy_database_to_gives_a_consistent_verified_copy() {
    let (td, dir) = copy_real_vault();
    let mut v = Vault::open(&dir, &Secret::new(REAL_PASSWORD), None).unwrap();
    v.add_item(NewItem::login("copied", "u", Secret::new("p"), ""))
        .unwrap();
    let dest = td.path().join("copy.enpassdb");
    v.copy_database_to(&dest).unwrap();
    syncfabric_vault::verify_database_file(&dest, v.key()).unwrap();
    assert_eq!(
        syncfabric_vault::read_snapshot_file(&dest, v.key()).unwrap(),
        v.snapshot().unwrap()
    );
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(v.db_path()).unwrap()
    );
    // A damaged copy fails verification with Corrupt, not a panic.
    let mut bytes = std::fs::read(&dest).unwrap();
    let n = bytes.len();
    bytes[n - 500] ^= 0xff;
    std::fs::write(&dest, &bytes).unwrap();
    assert!(matches!(
        syncfabric_vault::verify_database_file(&dest, v.key()),
        Err(Error::Corrupt(_))
    ));
}
