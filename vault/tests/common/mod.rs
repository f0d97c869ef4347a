#![allow(dead_code)]
//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

/// The real Enpass vault kept in the repository (`testdata/enpass-2020`).
pub fn real_vault_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/enpass-2020");
    assert!(
        dir.join("vault.json").exists(),
        "the real test vault is missing at {}",
        dir.display()
    );
    dir
}

/// A writable copy of the real vault in a fresh temp dir.
pub fn copy_real_vault() -> (tempfile::TempDir, PathBuf) {
    let td = tempfile::tempdir().unwrap();
    let dir = td.path().join("vault");
    std::fs::create_dir(&dir).unwrap();
    for f in ["vault.json", "vault.enpassdb"] {
        std::fs::copy(real_vault_dir().join(f), dir.join(f)).unwrap();
        let mut p = std::fs::metadata(dir.join(f)).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        p.set_readonly(false);
        std::fs::set_permissions(dir.join(f), p).unwrap();
    }
    (td, dir)
}

pub const REAL_PASSWORD: &str = "mymasterpassword";
pub const REAL_RAW_KEY: &str = "fee57a6b3e0514915621bd51b022807b85dc325e3f4be3542300d13657c06b0d";
pub const LIVE_UUID: &str = "9b07477b-5da3-4242-b6de-d2f9d123ceeb";
pub const DELETED_UUID: &str = "432aeda5-4715-407c-a55f-4068f801a814";

/// sha256 of every file in a folder, sorted by name.
pub fn dir_hashes(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let bytes = std::fs::read(e.path()).unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                hex::encode(openssl::sha::sha256(&bytes)),
            )
        })
        .collect();
    v.sort();
    v
}

/// Runs `sqlcipher` on `db` with a raw key and SQL; returns stdout.
pub fn sqlcipher_cli(db: &Path, raw_key_hex: &str, sql: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sqlcipher")
        .arg(db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sqlcipher CLI (apt-get install sqlcipher)");
    let script = format!("PRAGMA key=\"x'{raw_key_hex}'\";\n{sql}\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sqlcipher failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The "reserved bytes per page" field of a SQLCipher 3 file's header, decrypted
/// independently (AES-256-CBC, IV at 1024-48): Enpass files have 48.
pub fn header_reserve(db: &[u8], raw_key: &[u8]) -> u8 {
    use openssl::symm::{Cipher, Crypter, Mode};
    let mut c = Crypter::new(
        Cipher::aes_256_cbc(),
        Mode::Decrypt,
        raw_key,
        Some(&db[1024 - 48..1024 - 32]),
    )
    .unwrap();
    c.pad(false);
    let mut out = [0u8; 64];
    c.update(&db[16..48], &mut out).unwrap();
    assert_eq!(&out[..2], &[4, 0], "page size 1024");
    out[4]
}
