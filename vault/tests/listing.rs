//! `Vault::item_summaries` (what `item list` reads) and `item_stamps` (what the sync
//! summary compares) agree with the full, decrypted reads.

use syncfabric_vault::{item_stamps_in_file, CreateOptions, NewItem, Secret, Vault};

#[test]
fn summaries_match_the_decrypted_items_and_stamps_see_every_change() {
    let td = tempfile::tempdir().unwrap();
    let mut v = Vault::create(
        td.path().join("v"),
        &Secret::new("pw"),
        &CreateOptions {
            kdf_iter: 1000,
            ..Default::default()
        },
    )
    .unwrap();
    let mut uuids = Vec::new();
    for i in 0..5 {
        let it = v
            .add_item(NewItem::login(
                &format!("t{i}"),
                &format!("u{i}"),
                Secret::new("p"),
                "",
            ))
            .unwrap();
        uuids.push(it.uuid);
    }
    v.trash_item(&uuids[1]).unwrap();
    v.delete_item(&uuids[2]).unwrap();
    let full = v.items().unwrap();
    let summaries = v.item_summaries().unwrap();
    assert_eq!(full.len(), summaries.len());
    for (f, s) in full.iter().zip(&summaries) {
        assert_eq!(
            (
                &f.uuid,
                &f.title,
                &f.subtitle,
                &f.category,
                f.trashed,
                f.deleted,
                f.updated_at
            ),
            (
                &s.uuid,
                &s.title,
                &s.subtitle,
                &s.category,
                s.trashed,
                s.deleted,
                s.updated_at
            )
        );
        assert_eq!(f.is_live(), s.is_live());
    }

    let before = v.item_stamps().unwrap();
    assert_eq!(before, item_stamps_in_file(v.db_path(), v.key()).unwrap());
    // A field-only change that keeps the item row's timestamps (as a merge adding a
    // losing value to a history can) is still seen.
    v.connection()
        .execute(
            "UPDATE itemfield SET history='[]' WHERE item_uuid=?1 AND item_field_uid=10",
            [&uuids[0]],
        )
        .unwrap();
    let after = v.item_stamps().unwrap();
    assert_ne!(before[&uuids[0]], after[&uuids[0]]);
    assert_eq!(before[&uuids[3]], after[&uuids[3]]);
}
