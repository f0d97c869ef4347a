//! Enpass's sync file (`vault.enpassdbsync`): made from the real Enpass vault, read
//! back, opened by independent tools, and hostile containers refused.

mod common;

use std::io::Cursor;
use std::process::Command;

use common::*;
use proptest::prelude::*;
use syncfabric_vault::container::{self, HEADER_LEN};
use syncfabric_vault::{Error, Secret, Vault, VaultKey, VaultMeta};

fn real_meta() -> VaultMeta {
    VaultMeta::read(&real_vault_dir().join("vault.json")).unwrap()
}

fn real_key() -> VaultKey {
    let db = std::fs::read(real_vault_dir().join("vault.enpassdb")).unwrap();
    let salt: [u8; 16] = db[..16].try_into().unwrap();
    VaultKey::derive(&Secret::new(REAL_PASSWORD), None, salt, 100_000).unwrap()
}

/// The real vault as a container, in a temp dir.
fn real_container() -> (tempfile::TempDir, std::path::PathBuf) {
    let td = tempfile::tempdir().unwrap();
    let out = td.path().join(container::FILE_NAME);
    container::pack(&real_meta(), &real_vault_dir().join("vault.enpassdb"), &out).unwrap();
    (td, out)
}

#[test]
fn the_real_vault_packs_into_exactly_the_enpass_shape_and_back() {
    let (td, file) = real_container();
    let bytes = std::fs::read(&file).unwrap();
    let db = std::fs::read(real_vault_dir().join("vault.enpassdb")).unwrap();
    assert_eq!(bytes.len(), HEADER_LEN + db.len());
    assert_eq!(&bytes[HEADER_LEN..], &db[..], "the database byte for byte");
    let json_end = bytes.iter().position(|&b| b == 0).unwrap();
    assert!(bytes[json_end..HEADER_LEN].iter().all(|&b| b == 0));
    let json: serde_json::Value = serde_json::from_slice(&bytes[..json_end]).unwrap();
    for k in [
        "last_modified_time",
        "last_modified_device",
        "vault_att_count",
        "vault_items_count",
        "kdf_iter",
        "vault_uuid",
    ] {
        assert!(json.get(k).is_some(), "{k} kept");
    }

    let dir = td.path().join("v");
    std::fs::create_dir(&dir).unwrap();
    let meta = container::unpack_verified(
        &mut std::fs::File::open(&file).unwrap(),
        &dir.join("vault.enpassdb"),
        &real_key(),
    )
    .unwrap();
    assert_eq!(meta, real_meta());
    meta.write_atomic(&dir.join("vault.json")).unwrap();
    let v = Vault::open(&dir, &Secret::new(REAL_PASSWORD), None).unwrap();
    let titles: Vec<String> = v.items().unwrap().into_iter().map(|i| i.title).collect();
    assert!(titles.contains(&"mylogin".to_string()), "{titles:?}");
}

/// An independent reader: the key from `openssl kdf`, the database after offset 1,024
/// cut out by `tail`, opened by the `sqlcipher` command-line tool.
#[test]
fn the_sqlcipher_cli_opens_what_we_write_after_offset_1024() {
    let (td, file) = real_container();
    let bytes = std::fs::read(&file).unwrap();
    let salt = hex::encode(&bytes[HEADER_LEN..HEADER_LEN + 16]);
    let out = Command::new("openssl")
        .args(["kdf", "-keylen", "64", "-kdfopt", "digest:SHA512"])
        .args(["-kdfopt", &format!("pass:{REAL_PASSWORD}")])
        .args(["-kdfopt", &format!("hexsalt:{salt}")])
        .args(["-kdfopt", "iter:100000", "PBKDF2"])
        .output()
        .expect("openssl CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key: String = String::from_utf8(out.stdout)
        .unwrap()
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .take(64)
        .collect::<String>()
        .to_lowercase();
    assert_eq!(key, REAL_RAW_KEY);
    let db = td.path().join("cut.enpassdb");
    let cut = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tail -c +{} '{}' > '{}'",
            HEADER_LEN + 1,
            file.display(),
            db.display()
        ))
        .status()
        .unwrap();
    assert!(cut.success());
    let titles = sqlcipher_cli(
        &db,
        &key,
        "PRAGMA cipher_compatibility = 3;\nSELECT title FROM item ORDER BY title;",
    );
    assert_eq!(titles, "deleted\nmylogin\n");
}

fn header_with(json: &[u8], pad: u8) -> [u8; HEADER_LEN] {
    let mut h = [pad; HEADER_LEN];
    h[..json.len()].copy_from_slice(json);
    if json.len() < HEADER_LEN {
        h[json.len()] = 0;
    }
    h
}

#[test]
fn malformed_headers_are_refused_with_what_is_wrong() {
    let corrupt = |h: &[u8; HEADER_LEN], want: &str| match container::read_header(h) {
        Err(Error::Corrupt(m)) => assert!(m.contains(want), "{m}"),
        other => panic!("{want}: {other:?}"),
    };
    corrupt(&[b'{'; HEADER_LEN], "no NUL");
    corrupt(&header_with(b"{}", b'x'), "not NUL padding");
    corrupt(&[0; HEADER_LEN], "no vault.json");
    corrupt(&header_with(b"[1,2]", 0), "not a JSON object");
    corrupt(&header_with(b"{\"a\":", 0), "vault.json");
    assert!(container::read_header(&header_with(b"{\"version\":6}", 0)).is_ok());
}

#[test]
fn short_files_and_missing_databases_are_refused() {
    let td = tempfile::tempdir().unwrap();
    let out = td.path().join("db");
    let good = header_with(b"{\"version\":6}", 0);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (Vec::new(), "0 bytes, shorter"),
        (good[..1000].to_vec(), "1000 bytes, shorter"),
        (good.to_vec(), "0 bytes after its header"),
        (
            [&good[..], &[7u8; 1023]].concat(),
            "1023 bytes after its header",
        ),
    ];
    for (bytes, want) in cases {
        match container::unpack(&mut Cursor::new(bytes), &out) {
            Err(Error::Corrupt(m)) => assert!(m.contains(want), "{m}"),
            other => panic!("{want}: {other:?}"),
        }
    }
}

#[test]
fn a_damaged_or_foreign_database_part_does_not_pass() {
    let (td, file) = real_container();
    let bytes = std::fs::read(&file).unwrap();
    let out = td.path().join("db");
    // One byte of a page changed: the page HMAC fails.
    let mut bad = bytes.clone();
    let i = HEADER_LEN + 3 * 1024 + 100;
    bad[i] ^= 1;
    let e = container::unpack_verified(&mut Cursor::new(bad), &out, &real_key()).unwrap_err();
    assert!(matches!(e, Error::Corrupt(_)), "{e:?}");
    // Another vault's key (a different salt): refused before reading pages.
    let other = VaultKey::derive(&Secret::new("x"), None, [9; 16], 1000).unwrap();
    let e = container::unpack_verified(&mut Cursor::new(bytes.clone()), &out, &other).unwrap_err();
    assert!(matches!(e, Error::KeyChanged), "{e:?}");
    // The right salt with a wrong password.
    let salt: [u8; 16] = bytes[HEADER_LEN..HEADER_LEN + 16].try_into().unwrap();
    let wrong = VaultKey::derive(&Secret::new("wrong"), None, salt, 1000).unwrap();
    let e = container::unpack_verified(&mut Cursor::new(bytes), &out, &wrong).unwrap_err();
    assert!(matches!(e, Error::WrongKey), "{e:?}");
}

#[test]
fn a_vault_json_too_long_for_the_header_is_not_written() {
    let mut meta = real_meta();
    meta.set("padding", "x".repeat(900));
    let td = tempfile::tempdir().unwrap();
    let out = td.path().join(container::FILE_NAME);
    let e = container::pack(&meta, &real_vault_dir().join("vault.enpassdb"), &out).unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
    assert!(!out.exists());
}

proptest! {
    /// Any 1,024 bytes: read_header answers (Ok or an error), never panics, and what it
    /// accepts renders back to a header it accepts again.
    #[test]
    fn any_header_bytes_are_answered(bytes in proptest::collection::vec(any::<u8>(), HEADER_LEN)) {
        let h: [u8; HEADER_LEN] = bytes.try_into().unwrap();
        if let Ok(meta) = container::read_header(&h) {
            if let Ok(again) = container::header(&meta) {
                prop_assert_eq!(container::read_header(&again).unwrap(), meta);
            }
        }
    }
}
