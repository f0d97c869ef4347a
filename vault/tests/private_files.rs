//! Every file the vault crate writes is 0600 whatever the umask (issue #13): the
//! database (SQLCipher creates it), `vault.json`, attachment files, and the files a
//! password change or a database copy makes.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use syncfabric_vault::{CreateOptions, NewItem, Secret, Vault};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn vault_files_are_0600_under_umask_022() {
    // SAFETY: umask only sets this process's file mode mask.
    unsafe { libc::umask(0o022) };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let opts = CreateOptions {
        kdf_iter: 1000,
        name: "T".into(),
        ..Default::default()
    };
    let mut v = Vault::create(&dir, &Secret::new("pw"), &opts).unwrap();
    let item = v
        .add_item(NewItem::login("a", "u", Secret::new("p"), ""))
        .unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    v.add_attachment(
        &item.uuid,
        "f.bin",
        "application/octet-stream",
        &mut &big[..],
    )
    .unwrap();
    v.change_password(&Secret::new("pw2"), None, Some(1000))
        .unwrap();
    let copy = tmp.path().join("copy.enpassdb");
    v.copy_database_to(&copy).unwrap();
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        assert_eq!(mode(&e.path()), 0o600, "{:?}", e.path());
        n += 1;
    }
    assert!(n >= 3, "database, vault.json, attachment");
    assert_eq!(mode(&copy), 0o600);
}
