//! The real Enpass vault (testdata/enpass-2020) opens and reads correctly.

mod common;
use common::*;
use syncfabric_vault::{field_type, Error, Secret, Vault};

#[test]
fn real_vault_opens_and_decrypts_every_field() {
    let (_td, dir) = copy_real_vault();
    let before = dir_hashes(&dir);
    let v = Vault::open(&dir, &Secret::new(REAL_PASSWORD), None).unwrap();
    assert_eq!(hex::encode(v.key().expose_raw()), REAL_RAW_KEY);
    let items = v.items().unwrap();
    assert_eq!(items.len(), 2);

    let live = items.iter().find(|i| i.uuid == LIVE_UUID).unwrap();
    assert_eq!(live.title, "mylogin");
    assert_eq!(live.subtitle, "myusername");
    assert!(!live.deleted && !live.trashed);
    assert_eq!(
        live.field(field_type::USERNAME).unwrap().value.expose(),
        "myusername"
    );
    assert_eq!(
        live.field(field_type::EMAIL).unwrap().value.expose(),
        "my@email.com"
    );
    assert_eq!(
        live.field(field_type::PASSWORD).unwrap().value.expose(),
        "mypassword"
    );
    assert_eq!(
        live.field(field_type::URL).unwrap().value.expose(),
        "https://accounts.google.com/"
    );

    let del = items.iter().find(|i| i.uuid == DELETED_UUID).unwrap();
    assert!(del.deleted, "the deleted item is reported as deleted");
    assert_eq!(
        del.field(field_type::USERNAME).unwrap().value.expose(),
        "nothing"
    );
    assert_eq!(
        del.field(field_type::PASSWORD).unwrap().value.expose(),
        "here"
    );

    // Every non-empty field's SHA-1 equals its stored hash.
    let mut checked = 0;
    for it in &items {
        for f in &it.fields {
            if f.value.is_empty() {
                assert_eq!(f.hash, "");
            } else {
                assert_eq!(
                    hex::encode(openssl::sha::sha1(f.value.expose().as_bytes())),
                    f.hash,
                    "{}/{}",
                    it.uuid,
                    f.uid
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 6);
    assert_eq!(v.live_items().unwrap().len(), 1);
    drop(v);
    assert_eq!(before, dir_hashes(&dir), "opening writes nothing");
}

#[test]
fn real_vault_wrong_password() {
    let (_td, dir) = copy_real_vault();
    let before = dir_hashes(&dir);
    let e = Vault::open(&dir, &Secret::new("mymasterpassworD"), None).unwrap_err();
    assert!(matches!(e, Error::WrongKey), "{e:?}");
    assert_eq!(before, dir_hashes(&dir));
}

#[test]
fn real_vault_json_round_trips_byte_for_byte() {
    let bytes = std::fs::read(real_vault_dir().join("vault.json")).unwrap();
    let m = syncfabric_vault::VaultMeta::parse(&bytes).unwrap();
    assert_eq!(m.to_json_string().as_bytes(), &bytes[..]);
}
