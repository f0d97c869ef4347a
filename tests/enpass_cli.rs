//! The Enpass layout through the real binary: a folder that holds only an Enpass app's
//! sync file (made from the real Enpass vault) is recognised by `restore` and
//! `remote add`, synced both ways, and what we write opens in independent tools.

mod common;

use common::Dev;
use std::path::Path;
use std::process::Command;
use syncfabric::vault::container;

const REAL_PW: &str = "mymasterpassword";

fn real_vault() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/enpass-2020")
}

/// A shared folder holding only `Enpass/vault.enpassdbsync`, from the real vault.
fn enpass_folder(root: &Path) -> std::path::PathBuf {
    let shared = root.join("shared");
    std::fs::create_dir_all(shared.join("Enpass")).unwrap();
    let meta = syncfabric::vault::VaultMeta::read(&real_vault().join("vault.json")).unwrap();
    container::pack(
        &meta,
        &real_vault().join("vault.enpassdb"),
        &shared.join("Enpass/vault.enpassdbsync"),
    )
    .unwrap();
    shared
}

fn run(d: &Dev, args: &[&str]) -> String {
    let out = d
        .cmd(args)
        .env("SYNCFABRIC_PASSWORD", REAL_PW)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "syncfabric {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `sqlcipher` CLI on the database after offset 1,024 of `file`, with the key
/// `openssl kdf` derives from the password and the salt at offset 1,024.
fn independent_read(file: &Path, sql: &str) -> String {
    let bytes = std::fs::read(file).unwrap();
    let salt = hex::encode(&bytes[1024..1040]);
    let out = Command::new("openssl")
        .args(["kdf", "-keylen", "64", "-kdfopt", "digest:SHA512"])
        .args(["-kdfopt", &format!("pass:{REAL_PW}")])
        .args([
            "-kdfopt",
            &format!("hexsalt:{salt}"),
            "-kdfopt",
            "iter:100000",
        ])
        .arg("PBKDF2")
        .output()
        .expect("openssl CLI");
    assert!(out.status.success());
    let key: String = String::from_utf8(out.stdout)
        .unwrap()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(64)
        .collect();
    let db = file.with_extension("cut");
    std::fs::write(&db, &bytes[1024..]).unwrap();
    let mut child = Command::new("sqlcipher")
        .arg(&db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sqlcipher CLI");
    use std::io::Write;
    let script = format!("PRAGMA key=\"x'{key}'\";\nPRAGMA cipher_compatibility = 3;\n{sql}\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn restore_finds_the_enpass_file_and_syncs_it_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    let shared = enpass_folder(tmp.path());
    let url = format!("folder://{}", shared.display());
    let a = Dev::new(tmp.path(), "a");
    let out = run(&a, &["restore", &url, "--name", "enpass"]);
    assert!(out.contains("restored vault primary"), "{out}");
    let config = std::fs::read_to_string(&a.config).unwrap();
    assert!(config.contains("layout = \"enpass\""), "{config}");
    assert!(config.contains("layout_dir = \"Enpass\""), "{config}");
    let list = run(&a, &["--json", "item", "list"]);
    assert!(list.contains("mylogin"), "{list}");

    // An edit here goes into the Enpass file, which independent tools open.
    run(
        &a,
        &[
            "item",
            "edit",
            "mylogin",
            "--username",
            "changed by syncfabric",
        ],
    );
    let out = run(&a, &["sync"]);
    assert!(out.to_lowercase().contains("push"), "{out}");
    let file = shared.join("Enpass/vault.enpassdbsync");
    let got = independent_read(
        &file,
        "SELECT value FROM itemfield WHERE type='username' AND item_uuid='9b07477b-5da3-4242-b6de-d2f9d123ceeb';",
    );
    assert_eq!(got, "changed by syncfabric\n");
    let names: Vec<String> = std::fs::read_dir(&shared)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // Beside it only the folder provider's own lock file: no vault folder, no vault.json.
    assert!(
        names
            .iter()
            .all(|n| n == "Enpass" || n == ".syncfabric-lock"),
        "{names:?}"
    );

    // A second device adds the same folder as a remote: the file is found again.
    let b = Dev::new(tmp.path(), "b");
    run(&b, &["restore", &url, "--name", "enpass"]);
    run(&b, &["item", "edit", "mylogin", "--email", "b@example.com"]);
    run(&b, &["sync"]);
    run(&a, &["sync"]);
    let shown = run(&a, &["--json", "item", "show", "mylogin"]);
    assert!(shown.contains("b@example.com"), "{shown}");
    assert!(shown.contains("changed by syncfabric"), "{shown}");
}

#[test]
fn remote_add_detects_the_enpass_file_or_takes_the_layout_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Dev::new(tmp.path(), "d");
    d.run(&["vault", "create", "--kdf-iter", "1000"]);
    // Nothing there and nothing asked: syncfabric's layout.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = d.run(&[
        "remote",
        "add",
        "plain",
        &format!("folder://{}", empty.display()),
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("layout: syncfabric"));
    // Asked for: the Enpass folder, made on the first push.
    let fresh = tmp.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    let url = format!("folder://{}", fresh.display());
    let out = d.run(&["remote", "add", "app", &url, "--layout", "enpass"]);
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.contains("enpass (Enpass/vault.enpassdbsync)"), "{out}");
    d.run(&["item", "add", "--title", "Bank", "--username", "me"]);
    d.run(&["sync", "app"]);
    assert!(fresh.join("Enpass/vault.enpassdbsync").exists());
    // A folder with an Enpass file at the URL itself (Dropbox's /Apps/Enpass).
    let here = tmp.path().join("here");
    std::fs::create_dir_all(&here).unwrap();
    std::fs::copy(
        fresh.join("Enpass/vault.enpassdbsync"),
        here.join("vault.enpassdbsync"),
    )
    .unwrap();
    let e = Dev::new(tmp.path(), "e");
    let out = e.run(&["restore", &format!("folder://{}", here.display())]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("restored vault"));
    assert_eq!(e.titles(), ["Bank"]);
    let config = std::fs::read_to_string(&e.config).unwrap();
    assert!(config.contains("layout_dir = \"\""), "{config}");
}
