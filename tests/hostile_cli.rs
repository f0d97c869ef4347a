//! The CLI against hostile local state and a hostile remote (issue #13): a config
//! whose remote names are paths, passwords in URLs, copies left under an old master
//! password, corrupt remote metadata and databases, raw control characters in item
//! data, and the messages a person is left with. Each test drives the real binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use syncfabric::vault::{Secret, Vault};

mod common;
use common::{Dev, PW};

/// A device with a vault synced once to a folder remote `shared`; returns the remote
/// folder.
fn synced(root: &Path) -> (Dev, PathBuf) {
    let shared = root.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let d = Dev::new(root, "dev");
    d.run(&["vault", "create", "--name", "H", "--kdf-iter", "1000"]);
    d.run(&["item", "add", "--title", "Bank", "--username", "me"]);
    d.run(&[
        "remote",
        "add",
        "shared",
        &format!("folder://{}", shared.display()),
    ]);
    d.run(&["sync"]);
    (d, shared)
}

/// The remote's vault folder (`<uuid>/`).
fn remote_vault_dir(shared: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(shared)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("vault.enpassdb").exists())
        .collect();
    assert_eq!(dirs.len(), 1);
    dirs.remove(0)
}

#[test]
fn remote_names_from_the_config_never_become_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, _) = synced(tmp.path());
    let sibling = tmp.path().join("x");
    std::fs::create_dir_all(&sibling).unwrap();
    std::fs::write(sibling.join("keep"), "keep").unwrap();
    let config = std::fs::read_to_string(&d.config).unwrap();
    for bad in ["..", "../../x", ".", "a/b", ""] {
        std::fs::write(
            &d.config,
            config.replace("name = \"shared\"", &format!("name = {bad:?}")),
        )
        .unwrap();
        for args in [&["remote", "rm", bad][..], &["sync"], &["status"]] {
            let err = d.fail(args);
            assert!(err.contains("a remote name is 1 to 64"), "{args:?}: {err}");
        }
        assert!(d.vault.join("vault.json").exists(), "{bad}: vault emptied");
        assert!(d.vault.join("vault.enpassdb").exists());
        assert!(d.state("shared").join("state.json").exists());
        assert!(sibling.join("keep").exists(), "{bad}: sibling deleted");
    }
    std::fs::write(&d.config, &config).unwrap();
    // A plain absolute path is still a folder remote (no scheme to check).
    let plain = tmp.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    d.run(&["remote", "add", "plain", plain.to_str().unwrap()]);
    d.run(&["remote", "list"]);
    for bad in ["..", "../x", "_x", &"n".repeat(65)] {
        let err = d.fail(&["remote", "add", "--", bad, "folder:///tmp"]);
        assert!(err.contains("a remote name is 1 to 64"), "{err}");
    }
    d.run(&["sync"]);
}

#[test]
fn passwords_in_urls_are_refused_and_never_stored_or_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, _) = synced(tmp.path());
    let secret = "Sup3rS3cret";
    let url = format!("webdav+http://alice:{secret}@127.0.0.1:9/dav/");
    for args in [
        &["remote", "add", "x", url.as_str()][..],
        &["--json", "remote", "add", "x", url.as_str()],
    ] {
        let out = d.try_run(args);
        assert!(!out.status.success());
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains(secret), "{all}");
        assert!(all.contains("SYNCFABRIC_REMOTE_PASSWORD"), "{all}");
        assert!(all.contains("webdav+http://alice@127.0.0.1"), "{all}");
    }
    assert!(!std::fs::read_to_string(&d.config).unwrap().contains(secret));
    // A config written by hand (or by an older version) with one is refused whole.
    let mut config = std::fs::read_to_string(&d.config).unwrap();
    config.push_str(&format!(
        "\n[[remote]]\nname = \"dav\"\nvault = {:?}\nurl = {url:?}\n",
        d.vault.canonicalize().unwrap()
    ));
    std::fs::write(&d.config, config).unwrap();
    for args in [&["remote", "list"][..], &["status"], &["--json", "status"]] {
        let out = d.try_run(args);
        assert!(!out.status.success());
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains(secret), "{all}");
        assert!(all.contains("a password in the URL"), "{all}");
    }
    // The library refuses it too, whatever calls it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(syncfabric::remote::open(&url))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("holds a password") && !err.contains(secret),
        "{err}"
    );
}

#[test]
fn a_password_change_rekeys_every_sync_copy_and_the_next_sync_pushes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, shared) = synced(tmp.path());
    d.run(&["item", "add", "--title", "Mail"]);
    d.run(&["sync"]);
    let state = d.state("shared");
    let mut copies = vec![state.join("base.enpassdb")];
    for e in std::fs::read_dir(state.join("journal")).unwrap() {
        copies.push(e.unwrap().path());
    }
    assert!(copies.len() >= 3, "{copies:?}");
    let old_key = Vault::open(&d.vault, &Secret::new(PW), None)
        .unwrap()
        .key()
        .clone();
    let out = d
        .cmd(&["vault", "passwd"])
        .env("SYNCFABRIC_NEW_PASSWORD", "the new one")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let new = Vault::open(&d.vault, &Secret::new("the new one"), None).unwrap();
    for c in &copies {
        assert!(
            syncfabric::vault::verify_database_file(c, &old_key).is_err(),
            "{} still opens with the old password",
            c.display()
        );
        syncfabric::vault::verify_database_file(c, new.key()).unwrap();
    }
    drop(new);
    let out = d
        .cmd(&["sync"])
        .env("SYNCFABRIC_PASSWORD", "the new one")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Pushed"));
    // The remote now opens with the new password only.
    let remote_db = remote_vault_dir(&shared).join("vault.enpassdb");
    assert!(syncfabric::vault::verify_database_file(&remote_db, &old_key).is_err());
    let other = Dev::new(tmp.path(), "other");
    let url = format!("folder://{}", shared.display());
    let out = other
        .cmd(&["restore", &url])
        .env("SYNCFABRIC_PASSWORD", "the new one")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// Corrupt remote metadata and databases are reported as corrupt, with the file and
/// the reason, never as a changed password; nothing local changes.
#[test]
fn a_corrupt_remote_is_called_corrupt_not_a_changed_password() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, shared) = synced(tmp.path());
    let rdir = remote_vault_dir(&shared);
    let json = std::fs::read_to_string(rdir.join("vault.json")).unwrap();
    let db = std::fs::read(rdir.join("vault.enpassdb")).unwrap();
    let local_db = std::fs::read(d.vault.join("vault.enpassdb")).unwrap();
    d.run(&["item", "add", "--title", "Pending"]);
    let local_db_after = std::fs::read(d.vault.join("vault.enpassdb")).unwrap();
    assert_ne!(local_db, local_db_after);
    let iter_line = json
        .lines()
        .find(|l| l.contains("\"kdf_iter\""))
        .unwrap()
        .to_string();
    for bad in ["0", "-1", "\"1000\"", "9223372036854775807", "100000000"] {
        let t = std::time::Instant::now();
        std::fs::write(
            rdir.join("vault.json"),
            json.replace(&iter_line, &format!("    \"kdf_iter\": {bad},")),
        )
        .unwrap();
        // Something changed remotely, so the remote is read.
        std::fs::write(
            rdir.join("vault.enpassdb"),
            [&db[..], &[0u8; 1024]].concat(),
        )
        .unwrap();
        let err = d.fail(&["sync"]);
        assert!(
            err.contains("corrupt") && err.contains("vault.json") && err.contains("kdf_iter"),
            "kdf_iter {bad}: {err}"
        );
        assert!(!err.contains("master password or keyfile"), "{err}");
        assert!(t.elapsed() < std::time::Duration::from_secs(30));
    }
    std::fs::write(rdir.join("vault.json"), &json).unwrap();
    let mut random = vec![0u8; db.len()];
    fastrand::fill(&mut random);
    let mut plain = b"SQLite format 3\0".to_vec();
    plain.resize(db.len(), 0);
    let mut salted = db.clone();
    salted[2000] ^= 0xff; // a damaged page with this vault's salt
    let mut first_page = db.clone();
    first_page[100] ^= 0xff;
    for (what, bytes) in [
        ("random bytes", random),
        ("plain SQLite", plain),
        ("damaged page", salted),
        ("damaged first page", first_page),
        ("short", db[..300].to_vec()),
    ] {
        std::fs::write(rdir.join("vault.enpassdb"), &bytes).unwrap();
        let err = d.fail(&["sync"]);
        assert!(err.contains("corrupt"), "{what}: {err}");
        assert!(!err.contains("master password or keyfile"), "{what}: {err}");
        assert_eq!(
            std::fs::read(d.vault.join("vault.enpassdb")).unwrap(),
            local_db_after,
            "{what}: the local vault changed"
        );
    }
    // The way out the message names: push this device's copy over it, also over a
    // vault.json that does not parse.
    std::fs::write(rdir.join("vault.json"), "{ not json").unwrap();
    let err = d.fail(&["sync"]);
    assert!(
        err.contains("corrupt") && err.contains("vault.json"),
        "{err}"
    );
    d.run(&["sync", "--recreate-remote"]);
    let other = Dev::new(tmp.path(), "other");
    other.run(&["restore", &format!("folder://{}", shared.display())]);
    let list = other.run(&["item", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("Pending"));
}

#[test]
fn a_remote_database_that_vanished_is_named_and_can_be_recreated() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, shared) = synced(tmp.path());
    let rdir = remote_vault_dir(&shared);
    std::fs::remove_file(rdir.join("vault.enpassdb")).unwrap();
    let err = d.fail(&["sync"]);
    assert!(
        err.contains("the remote copy of this vault is gone") && err.contains("--recreate-remote"),
        "{err}"
    );
    // Also with a local change: no silent re-upload.
    d.run(&["item", "add", "--title", "Later"]);
    let err = d.fail(&["sync"]);
    assert!(err.contains("is gone"), "{err}");
    d.run(&["sync", "--recreate-remote"]);
    assert!(rdir.join("vault.enpassdb").exists());
    d.run(&["sync"]);
}

#[test]
fn remote_add_leaves_nothing_of_the_probe_on_the_remote() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, shared) = synced(tmp.path());
    let names: Vec<String> = std::fs::read_dir(&shared)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    // (The folder provider's own lock file may stay: it is not the probe's.)
    assert!(
        !names.iter().any(|n| n.starts_with(".syncfabric-probe")),
        "{names:?}"
    );
    assert!(names.len() <= 2, "{names:?}");
}

#[test]
fn kdf_rounds_are_bounded_on_create() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Dev::new(tmp.path(), "dev");
    for bad in ["100000000", "999", "0"] {
        let err = d.fail(&["vault", "create", "--kdf-iter", bad]);
        assert!(err.contains("1000..=5000000"), "{err}");
    }
    assert!(!d.vault.join("vault.json").exists());
}

#[test]
fn item_text_is_escaped_on_a_terminal_and_exact_in_json() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Dev::new(tmp.path(), "dev");
    d.run(&["vault", "create", "--kdf-iter", "1000"]);
    let evil = "pay\u{1b}]0;owned\u{7}\u{1b}[2J\u{202e}moc.knab";
    d.run(&["item", "add", "--title", evil, "--username", evil]);
    for args in [&["item", "list"][..], &["item", "show", evil]] {
        let out = String::from_utf8(d.run(args).stdout).unwrap();
        assert!(
            !out.contains('\u{1b}') && !out.contains('\u{202e}'),
            "{out:?}"
        );
        assert!(out.contains("pay\\u{1b}]0;owned\\u{7}"), "{out:?}");
    }
    let out = d.run(&["--json", "item", "list"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["title"].as_str(), Some(evil));
}

#[test]
fn rust_log_turns_on_tracing_like_syncfabric_log() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, _) = synced(tmp.path());
    for var in ["RUST_LOG", "SYNCFABRIC_LOG"] {
        d.run(&["item", "add", "--title", var]);
        let out = d.cmd(&["sync"]).env(var, "debug").output().unwrap();
        assert!(out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("DEBUG"), "{var}: {err}");
    }
}

#[test]
fn no_terminal_for_a_password_says_where_else_to_give_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Dev::new(tmp.path(), "dev");
    d.run(&["vault", "create", "--kdf-iter", "1000"]);
    let out = d
        .cmd(&[
            "remote",
            "add",
            "dav",
            "webdav+http://alice@127.0.0.1:9/dav/",
        ])
        .env_remove("SYNCFABRIC_REMOTE_PASSWORD")
        .setsid() // no controlling terminal to prompt on
        .output();
    let out = out.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("$SYNCFABRIC_REMOTE_PASSWORD") && err.contains("--password-stdin"),
        "{err}"
    );
}

#[test]
fn a_damaged_local_vault_says_what_to_do_next() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, _) = synced(tmp.path());
    // One byte of every page but the first (which `open` checks): whatever page the
    // item list reads fails its HMAC.
    let path = d.vault.join("vault.enpassdb");
    let mut db = std::fs::read(&path).unwrap();
    assert!(db.len() > 4 * 1024);
    for page in db.chunks_mut(1024).skip(1) {
        page[500] ^= 0x5a;
    }
    std::fs::write(&path, db).unwrap();
    let err = d.fail(&["item", "list"]);
    assert!(
        err.contains("the local vault file is damaged") && err.contains("restore"),
        "{err}"
    );
}

trait NoTerminal {
    fn setsid(&mut self) -> &mut Self;
}

impl NoTerminal for Command {
    /// Runs the child in a new session: it has no controlling terminal.
    fn setsid(&mut self) -> &mut Self {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
        unsafe {
            self.pre_exec(|| {
                libc::setsid();
                Ok(())
            })
        }
    }
}
