//! New vaults: readable by independent tools; keyfiles; password changes; bad input.

mod common;
use common::*;
use std::path::Path;
use syncfabric_vault::{field_type, CreateOptions, Error, Keyfile, NewItem, Secret, Vault};

fn opts(iter: u32, keyfile: Option<Keyfile>) -> CreateOptions {
    CreateOptions {
        kdf_iter: iter,
        keyfile,
        device_name: Some("testbox".into()),
        ..CreateOptions::default()
    }
}

/// Plain AES-256-GCM decryption written from the format description (not the crate's
/// code): value = hex(ciphertext || 16-byte tag), key||nonce = item.key, AAD = uuid bytes.
fn independent_decrypt(item_key: &[u8], uuid: &str, value_hex: &str) -> String {
    assert_eq!(item_key.len(), 44);
    let data = hex::decode(value_hex).unwrap();
    let (ct, tag) = data.split_at(data.len() - 16);
    let aad = hex::decode(uuid.replace('-', "")).unwrap();
    let mut c = openssl::symm::Crypter::new(
        openssl::symm::Cipher::aes_256_gcm(),
        openssl::symm::Mode::Decrypt,
        &item_key[..32],
        Some(&item_key[32..]),
    )
    .unwrap();
    c.aad_update(&aad).unwrap();
    let mut out = vec![0u8; ct.len() + 32];
    let n = c.update(ct, &mut out).unwrap();
    c.set_tag(tag).unwrap();
    let m = c.finalize(&mut out[n..]).unwrap();
    out.truncate(n + m);
    String::from_utf8(out).unwrap()
}

fn openssl_kdf(pass: &str, salt: &[u8], iter: u32) -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "kdf",
            "-keylen",
            "32",
            "-kdfopt",
            "digest:SHA512",
            "-kdfopt",
            &format!("pass:{pass}"),
            "-kdfopt",
            &format!("hexsalt:{}", hex::encode(salt)),
            "-kdfopt",
            &format!("iter:{iter}"),
            "PBKDF2",
        ])
        .output()
        .expect("openssl CLI");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .replace(':', "")
        .to_lowercase()
}

#[test]
fn created_vault_is_readable_by_sqlcipher_cli_and_openssl() {
    let td = tempfile::tempdir().unwrap();
    let dir = td.path().join("v");
    let pw = "correct horse battery";
    // 320,000 iterations on purpose: the independent reader derives with exactly that.
    let mut v = Vault::create(
        &dir,
        &Secret::new(pw),
        &CreateOptions {
            device_name: Some("testbox".into()),
            ..CreateOptions::default()
        },
    )
    .unwrap();
    let a = v
        .add_item(NewItem::login(
            "Bank",
            "bob",
            Secret::new("Tr0ub4dor&3"),
            "https://bank.example/",
        ))
        .unwrap();
    let b = v
        .add_item(NewItem::login(
            "Mail",
            "carol",
            Secret::new("pässwörd ✓"),
            "",
        ))
        .unwrap();
    drop(v);

    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("vault.json")).unwrap()).unwrap();
    assert_eq!(meta["kdf_iter"], 320000);
    assert_eq!(meta["kdf_algo"], "pbkdf2");
    assert_eq!(meta["have_keyfile"], 0);
    assert_eq!(meta["version"], 6);
    assert_eq!(meta["vault_items_count"], 2);
    assert_eq!(meta["vault_uuid"].as_str().unwrap().len(), 36);

    let db = std::fs::read(dir.join("vault.enpassdb")).unwrap();
    let key_hex = openssl_kdf(pw, &db[..16], 320_000);
    assert_eq!(
        header_reserve(&db, &hex::decode(&key_hex).unwrap()),
        48,
        "SQLCipher 3 header like Enpass's"
    );
    let out = sqlcipher_cli(&dir.join("vault.enpassdb"), &key_hex, ".mode list\n.separator |\nSELECT uuid, title, hex(key) FROM item ORDER BY ID;\nSELECT i.uuid, f.value FROM itemfield f JOIN item i ON i.uuid=f.item_uuid WHERE f.type='password' ORDER BY i.ID;\nPRAGMA integrity_check;\nPRAGMA page_size;");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with(&format!("{}|Bank|", a.uuid)), "{out}");
    assert!(lines[1].starts_with(&format!("{}|Mail|", b.uuid)), "{out}");
    let keys: Vec<Vec<u8>> = lines[..2]
        .iter()
        .map(|l| hex::decode(l.rsplit('|').next().unwrap()).unwrap())
        .collect();
    let pw_a = lines[2].split('|').nth(1).unwrap();
    let pw_b = lines[3].split('|').nth(1).unwrap();
    assert_eq!(independent_decrypt(&keys[0], &a.uuid, pw_a), "Tr0ub4dor&3");
    assert_eq!(independent_decrypt(&keys[1], &b.uuid, pw_b), "pässwörd ✓");
    assert_eq!(lines[4], "ok");
    assert_eq!(lines[5], "1024");
    // Schema identical to the real Enpass vault's.
    let schema = |d: &Path, k: &str| {
        sqlcipher_cli(&d.join("vault.enpassdb"), k, "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY rowid;")
    };
    assert_eq!(
        schema(&dir, &key_hex),
        schema(&real_vault_dir(), REAL_RAW_KEY)
    );
}

#[test]
fn keyfile_vaults() {
    let td = tempfile::tempdir().unwrap();
    let dir = td.path().join("v");
    let kf = Keyfile::generate().unwrap();
    let kf_path = td.path().join("vault.enpasskey");
    kf.write_new(&kf_path).unwrap();
    let pw = Secret::new("pw");
    let mut v = Vault::create(&dir, &pw, &opts(1000, Some(kf.clone()))).unwrap();
    v.add_item(NewItem::login("t", "u", Secret::new("p"), ""))
        .unwrap();
    drop(v);
    let before = dir_hashes(&dir);
    let loaded = Keyfile::from_path(&kf_path).unwrap();
    assert_eq!(
        Vault::open(&dir, &pw, Some(&loaded))
            .unwrap()
            .live_items()
            .unwrap()
            .len(),
        1
    );
    assert!(matches!(
        Vault::open(&dir, &pw, None),
        Err(Error::MissingKeyfile)
    ));
    let other = Keyfile::generate().unwrap();
    assert!(matches!(
        Vault::open(&dir, &pw, Some(&other)),
        Err(Error::WrongKey)
    ));
    assert!(matches!(
        Vault::open(&dir, &Secret::new("px"), Some(&loaded)),
        Err(Error::WrongKey)
    ));
    let garbage = td.path().join("garbage.key");
    std::fs::write(&garbage, b"\x00\x01not xml at all").unwrap();
    assert!(matches!(
        Keyfile::from_path(&garbage),
        Err(Error::BadKeyfile(_))
    ));
    assert_eq!(before, dir_hashes(&dir), "failed opens write nothing");
}

#[test]
fn change_password_and_keyfile() {
    let td = tempfile::tempdir().unwrap();
    let dir = td.path().join("v");
    let mut v = Vault::create(&dir, &Secret::new("old"), &opts(1000, None)).unwrap();
    let it = v
        .add_item(NewItem::login("t", "u", Secret::new("secret-value"), ""))
        .unwrap();
    let salt_before = v.key().salt();
    let kf = Keyfile::generate().unwrap();
    v.change_password(&Secret::new("new"), Some(&kf), Some(2000))
        .unwrap();
    assert_ne!(v.key().salt(), salt_before);
    // Still usable after the re-key.
    v.trash_item(&it.uuid).unwrap();
    drop(v);
    let db = std::fs::read(dir.join("vault.enpassdb")).unwrap();
    assert_ne!(
        &db[..16],
        &salt_before[..],
        "salt is the first 16 bytes of the new file"
    );
    let k = syncfabric_vault::VaultKey::derive(
        &Secret::new("new"),
        Some(&kf),
        db[..16].try_into().unwrap(),
        2000,
    )
    .unwrap();
    assert_eq!(header_reserve(&db, k.expose_raw()), 48);
    assert!(matches!(
        Vault::open(&dir, &Secret::new("old"), None),
        Err(Error::MissingKeyfile)
    ));
    assert!(matches!(
        Vault::open(&dir, &Secret::new("old"), Some(&kf)),
        Err(Error::WrongKey)
    ));
    let v = Vault::open(&dir, &Secret::new("new"), Some(&kf)).unwrap();
    let got = v.get_item(&it.uuid).unwrap().unwrap();
    assert!(got.trashed);
    assert_eq!(
        got.field(field_type::PASSWORD).unwrap().value.expose(),
        "secret-value"
    );
    assert_eq!(v.meta().kdf_iter().unwrap(), 2000);
    assert!(v.meta().have_keyfile());
    // No temp files left behind.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn interrupted_password_change_is_finished_on_open() {
    // Simulate a crash after the new database was renamed into place but before the
    // new vault.json was: vault.json is old, vault.json.rekey is new.
    let td = tempfile::tempdir().unwrap();
    let dir = td.path().join("v");
    let mut v = Vault::create(&dir, &Secret::new("old"), &opts(1000, None)).unwrap();
    let old_json = std::fs::read(dir.join("vault.json")).unwrap();
    v.change_password(&Secret::new("new"), None, Some(1500))
        .unwrap();
    drop(v);
    std::fs::rename(dir.join("vault.json"), dir.join("vault.json.rekey")).unwrap();
    std::fs::write(dir.join("vault.json"), old_json).unwrap();
    let v = Vault::open(&dir, &Secret::new("new"), None).unwrap();
    assert_eq!(v.meta().kdf_iter().unwrap(), 1500);
    assert!(!dir.join("vault.json.rekey").exists());
}

#[test]
fn bad_inputs_give_clear_errors_and_write_nothing() {
    let td = tempfile::tempdir().unwrap();
    let dir = td.path().join("v");
    let pw = Secret::new("pw");
    let mut v = Vault::create(&dir, &pw, &opts(1000, None)).unwrap();
    for i in 0..60 {
        v.add_item(NewItem::login(
            &format!("item {i}"),
            "user",
            Secret::new(format!("password {i}")),
            "https://x.example/",
        ))
        .unwrap();
    }
    drop(v);
    let pristine = std::fs::read(dir.join("vault.enpassdb")).unwrap();
    let pages = pristine.len() / 1024;
    assert!(pages > 10);

    let check = |label: &str, want: fn(&Error) -> bool| {
        let before = dir_hashes(&dir);
        let r = Vault::open(&dir, &pw, None);
        match r {
            Err(ref e) if want(e) => {}
            Err(e) => panic!("{label}: unexpected error {e:?}"),
            Ok(_) => panic!("{label}: opened"),
        }
        assert_eq!(before, dir_hashes(&dir), "{label}: something was written");
    };
    // Truncated databases.
    for cut in [
        0usize,
        100,
        1024 + 7,
        pristine.len() - 1,
        pristine.len() / 2 + 5,
    ] {
        std::fs::write(dir.join("vault.enpassdb"), &pristine[..cut]).unwrap();
        check(&format!("truncated at {cut}"), |e| {
            matches!(e, Error::Corrupt(_))
        });
    }
    // Truncated at a page boundary: fewer pages than the header says.
    std::fs::write(dir.join("vault.enpassdb"), &pristine[..(pages / 2) * 1024]).unwrap();
    check("truncated at page boundary", |e| {
        matches!(e, Error::Corrupt(_))
    });
    // A flipped byte in several pages (page 1 after the salt, middle, last): `open`
    // refuses it (page 1 and the schema pages are read there), or the first read of
    // the page does (every page is HMAC-checked by SQLCipher when read); a page no
    // listing reads (an index) leaves the listing unchanged, and `verify` finds it.
    // Nothing is written in any case. (tests/tamper_local.rs flips every page.)
    std::fs::write(dir.join("vault.enpassdb"), &pristine).unwrap();
    let want = {
        let v = Vault::open(&dir, &pw, None).unwrap();
        let items = v.items().unwrap();
        items
            .iter()
            .map(|i| (i.uuid.clone(), i.fields.clone()))
            .collect::<Vec<_>>()
    };
    for page in [0usize, 1, 2, pages / 2, pages - 1] {
        for off in [100usize, 1000] {
            let label = format!("flip page {page} offset {off}");
            let mut bad = pristine.clone();
            bad[page * 1024 + off] ^= 0x01;
            std::fs::write(dir.join("vault.enpassdb"), &bad).unwrap();
            let before = dir_hashes(&dir);
            match Vault::open(&dir, &pw, None) {
                Err(Error::Corrupt(_)) => {}
                Err(e) => panic!("{label}: unexpected error {e:?}"),
                Ok(v) => match v.items() {
                    Err(Error::Corrupt(_)) => {}
                    Err(e) => panic!("{label}: unexpected error on read {e:?}"),
                    Ok(items) => {
                        let got: Vec<_> = items
                            .iter()
                            .map(|i| (i.uuid.clone(), i.fields.clone()))
                            .collect();
                        assert!(got == want, "{label}: listed different content");
                        assert!(
                            matches!(v.verify(), Err(Error::Corrupt(_))),
                            "{label}: verify missed it"
                        );
                    }
                },
            }
            assert_eq!(before, dir_hashes(&dir), "{label}: something was written");
        }
    }
    std::fs::write(dir.join("vault.enpassdb"), &pristine).unwrap();
    Vault::open(&dir, &pw, None).unwrap().verify().unwrap();
    // vault.json with another kdf.
    let json = std::fs::read_to_string(dir.join("vault.json")).unwrap();
    std::fs::write(
        dir.join("vault.json"),
        json.replace("\"pbkdf2\"", "\"argon2id\""),
    )
    .unwrap();
    check("kdf argon2id", |e| matches!(e, Error::Unsupported(_)));
    std::fs::write(dir.join("vault.json"), "{ not json").unwrap();
    check("garbage vault.json", |e| matches!(e, Error::Corrupt(_)));
    // A vault.json that lies about the iteration count: wrong key, not corrupt.
    std::fs::write(
        dir.join("vault.json"),
        json.replace("\"kdf_iter\": 1000", "\"kdf_iter\": 1001"),
    )
    .unwrap();
    check("other kdf_iter", |e| matches!(e, Error::WrongKey));
    std::fs::write(dir.join("vault.json"), &json).unwrap();
    Vault::open(&dir, &pw, None).unwrap();
}

#[test]
fn debug_output_holds_no_secret() {
    let td = tempfile::tempdir().unwrap();
    let dir = td.path().join("v");
    let pw = Secret::new("master-SECRET-pw");
    let mut v = Vault::create(&dir, &pw, &opts(1000, None)).unwrap();
    let mut it = v
        .add_item(NewItem::login(
            "t",
            "u",
            Secret::new("field-SECRET-value"),
            "",
        ))
        .unwrap();
    it.note = Secret::new("note-SECRET");
    it.field_mut(field_type::PASSWORD).unwrap().value = Secret::new("second-SECRET");
    let it = v.update_item(&it).unwrap();
    let key_hex = hex::encode(v.key().expose_raw());
    let snap = v.snapshot().unwrap();
    let all = format!(
        "{pw:?} {v:?} {:?} {it:?} {:?} {snap:?} {:?} {:?}",
        v.key(),
        v.items().unwrap(),
        snap.table("itemfield"),
        Keyfile::generate().unwrap()
    );
    for s in ["SECRET", &key_hex[..16]] {
        assert!(!all.contains(s), "debug output leaks {s}: {all}");
    }
    let e = Vault::open(&dir, &Secret::new("wrong-SECRET"), None).unwrap_err();
    assert!(!format!("{e:?} {e}").contains("SECRET"));
}
