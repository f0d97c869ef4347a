//! The commands a person lives in around the sync (issue #19): attachments, field
//! history, the generator, TOTP, strength, sharing, audit. Each drives the real binary,
//! bad input included.

use std::io::Write;
use std::path::Path;

mod common;
use common::{Dev, PW};

fn device(root: &Path, name: &str) -> Dev {
    let d = Dev::new(root, name);
    d.run(&["vault", "create", "--name", "T", "--kdf-iter", "1000"]);
    d.run(&["item", "add", "--title", "Bank", "--username", "me"]);
    d
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// `n` pseudo-random bytes (fixed seed: a failure reproduces).
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut r = fastrand::Rng::with_seed(seed);
    (0..n).map(|_| r.u8(..)).collect()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs the `sqlcipher` CLI (SQLCipher 3 settings, raw key) on `db`; returns stdout.
fn sqlcipher(db: &Path, raw_key: &[u8], sql: &str) -> String {
    let mut child = std::process::Command::new("sqlcipher")
        .arg(db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the sqlcipher CLI (scripts/test installs it: apt-get install sqlcipher)");
    let script = format!(
        "PRAGMA key=\"x'{}'\";\nPRAGMA cipher_compatibility = 3;\n{sql}\n",
        hex::encode(raw_key)
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "sqlcipher failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The vault's raw key, derived here as the format says (not through the crate):
/// PBKDF2-HMAC-SHA512(password, the file's first 16 bytes, kdf_iter), 32 bytes.
fn raw_key(vault: &Path) -> Vec<u8> {
    let db = std::fs::read(vault.join("vault.enpassdb")).unwrap();
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(vault.join("vault.json")).unwrap()).unwrap();
    let iter = meta["kdf_iter"].as_u64().unwrap() as usize;
    let mut key = vec![0u8; 32];
    openssl::pkcs5::pbkdf2_hmac(
        PW.as_bytes(),
        &db[..16],
        iter,
        openssl::hash::MessageDigest::sha512(),
        &mut key,
    )
    .unwrap();
    key
}

#[test]
fn attachments_through_the_cli_with_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let d = device(tmp.path(), "dev");
    let small = tmp.path().join("note.txt");
    std::fs::write(&small, b"a small note, stored inline").unwrap();
    let big_content = bytes(7, 3 * 1024 * 1024 + 17);
    let big = tmp.path().join("scan.pdf");
    std::fs::write(&big, &big_content).unwrap();

    let out = d.run(&["item", "attach", "Bank", small.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("inline"));
    d.run(&["item", "attach", "Bank", big.to_str().unwrap()]);
    let list = json(&d.run(&["--json", "item", "attachments", "Bank"]));
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["name"], "note.txt");
    assert_eq!(list[0]["stored"], "inline");
    assert_eq!(list[1]["name"], "scan.pdf");
    assert_eq!(list[1]["stored"], "file");
    assert_eq!(list[1]["mime"], "application/pdf");
    assert_eq!(list[1]["size"], big_content.len());
    let big_uuid = list[1]["uuid"].as_str().unwrap().to_string();
    assert!(d.vault.join(format!("{big_uuid}.enpassattach")).exists());

    // Out to a file and to standard output, byte for byte.
    let dest = tmp.path().join("out.pdf");
    d.run(&[
        "item",
        "extract",
        "Bank",
        "scan.pdf",
        "-o",
        dest.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&dest).unwrap(), big_content);
    let out = d.run(&["item", "extract", "Bank", "note.txt"]);
    assert_eq!(out.stdout, b"a small note, stored inline");
    let out = d.run(&["item", "extract", "Bank", &big_uuid]);
    assert!(out.stdout == big_content, "by uuid, to stdout");
    // Never over an existing file.
    std::fs::write(&dest, b"keep me").unwrap();
    let err = d.fail(&[
        "item",
        "extract",
        "Bank",
        "scan.pdf",
        "-o",
        dest.to_str().unwrap(),
    ]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&dest).unwrap(), b"keep me");

    // Bad input: each a clear error, and nothing added.
    let err = d.fail(&["item", "attach", "Nope", small.to_str().unwrap()]);
    assert!(err.contains("no item with uuid or title \"Nope\""), "{err}");
    let missing = tmp.path().join("missing.bin");
    let err = d.fail(&["item", "attach", "Bank", missing.to_str().unwrap()]);
    assert!(
        err.contains("cannot read") && err.contains("missing.bin"),
        "{err}"
    );
    let err = d.fail(&["item", "attach", "Bank", tmp.path().to_str().unwrap()]);
    assert!(err.contains("is a folder"), "{err}");
    if !is_root() {
        let locked = tmp.path().join("locked.bin");
        std::fs::write(&locked, b"secret").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        let err = d.fail(&["item", "attach", "Bank", locked.to_str().unwrap()]);
        assert!(err.contains("cannot read"), "{err}");
    }
    // A file that opens but cannot be read, even by root: /proc/self/mem at offset 0.
    let err = d.fail(&["item", "attach", "Bank", "/proc/self/mem"]);
    assert!(err.contains("cannot read /proc/self/mem"), "{err}");
    // A sparse file just over the 1 GiB limit (no disk space used).
    let huge = tmp.path().join("huge.iso");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len((1 << 30) + 1)
        .unwrap();
    let err = d.fail(&["item", "attach", "Bank", huge.to_str().unwrap()]);
    assert!(err.contains("at most 1073741824 bytes"), "{err}");
    let err = d.fail(&["item", "extract", "Bank", "nope.txt"]);
    assert!(err.contains("no attachment named \"nope.txt\""), "{err}");
    let err = d.fail(&["item", "detach", "Nope", "note.txt"]);
    assert!(err.contains("no item"), "{err}");
    let list = json(&d.run(&["--json", "item", "attachments", "Bank"]));
    assert_eq!(
        list.as_array().unwrap().len(),
        2,
        "nothing was added: {list}"
    );

    // A damaged attachment file: a clear error, and no file (not even a temp) is left.
    let att = d.vault.join(format!("{big_uuid}.enpassattach"));
    let pristine = std::fs::read(&att).unwrap();
    let mut bad = pristine.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x20;
    std::fs::write(&att, &bad).unwrap();
    let outdir = tmp.path().join("out");
    std::fs::create_dir_all(&outdir).unwrap();
    let target = outdir.join("scan.pdf");
    let err = d.fail(&[
        "item",
        "extract",
        "Bank",
        "scan.pdf",
        "-o",
        target.to_str().unwrap(),
    ]);
    assert!(
        err.contains("corrupt") || err.contains("does not match"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&outdir).unwrap().count(),
        0,
        "nothing left behind"
    );
    std::fs::write(&att, &pristine).unwrap();

    // Detach: gone from the list, and extracting it is an error.
    d.run(&["item", "detach", "Bank", "note.txt"]);
    let list = json(&d.run(&["--json", "item", "attachments", "Bank"]));
    assert_eq!(list.as_array().unwrap().len(), 1);
    let err = d.fail(&["item", "extract", "Bank", "note.txt"]);
    assert!(err.contains("no attachment named"), "{err}");
}

/// An attachment added on one device comes out byte-identical on another after a sync
/// through a folder remote, and the `sqlcipher` CLI finds it the Enpass way: an
/// `attachment` row of the item holding a 32-byte key, and `<uuid>.enpassattach` a
/// SQLCipher file that opens with that key and holds the content.
#[test]
fn an_attachment_crosses_devices_and_an_independent_reader_finds_it() {
    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let url = format!("folder://{}", shared.display());
    let a = device(tmp.path(), "laptop");
    a.run(&["remote", "add", "shared", &url]);
    a.run(&["sync"]);
    let b = Dev::new(tmp.path(), "phone");
    b.run(&["restore", &url, "--name", "shared"]);

    let content = bytes(11, 2 * 1024 * 1024 + 333);
    let file = tmp.path().join("passport.jpg");
    std::fs::write(&file, &content).unwrap();
    a.run(&["item", "attach", "Bank", file.to_str().unwrap()]);
    a.run(&["sync"]);
    b.run(&["sync"]);
    let dest = tmp.path().join("from-phone.jpg");
    b.run(&[
        "item",
        "extract",
        "Bank",
        "passport.jpg",
        "-o",
        dest.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read(&dest).unwrap() == content,
        "byte-identical on the other device"
    );

    // The independent reader, on the phone's copy.
    let key = raw_key(&b.vault);
    let rows = sqlcipher(
        &b.vault.join("vault.enpassdb"),
        &key,
        "SELECT a.uuid, a.name, a.size, hex(a.password), ifnull(length(a.data),0) FROM attachment a \
         JOIN item i ON i.uuid = a.item_uuid WHERE i.title = 'Bank' AND a.deleted = 0;",
    );
    let cols: Vec<&str> = rows.trim().split('|').collect();
    assert_eq!(cols.len(), 5, "one live attachment row: {rows}");
    assert_eq!(cols[1], "passport.jpg");
    assert_eq!(cols[2], content.len().to_string());
    assert_eq!(cols[3].len(), 64, "a 32-byte key in attachment.password");
    assert_eq!(cols[4], "0", "not inline");
    let att_key = hex::decode(cols[3]).unwrap();
    let att_file = b.vault.join(format!("{}.enpassattach", cols[0]));
    let chunks = sqlcipher(
        &att_file,
        &att_key,
        "SELECT hex(data) FROM chunk ORDER BY idx;",
    );
    let got: Vec<u8> = chunks
        .lines()
        .flat_map(|l| hex::decode(l.trim()).unwrap())
        .collect();
    assert!(got == content, "the .enpassattach file holds the content");
    let sha = sqlcipher(
        &att_file,
        &att_key,
        "SELECT value FROM info WHERE key = 'sha1';",
    );
    assert_eq!(sha.trim(), hex::encode(openssl::sha::sha1(&content)));
}

/// `item history`: earlier values of edited fields, masked unless --reveal, and the
/// value a sync conflict lost (kept in the field's history by the merge).
#[test]
fn history_shows_earlier_values_and_the_value_a_conflict_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let url = format!("folder://{}", shared.display());
    let a = device(tmp.path(), "laptop");
    let out = json(&a.run(&["--json", "item", "history", "Bank"]));
    assert_eq!(out["fields"].as_array().unwrap().len(), 0, "{out}");
    let shown = |d: &Dev| {
        let v = json(&d.run(&["--json", "item", "show", "Bank", "--reveal"]));
        let pw = v["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["type"] == "password")
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .to_string();
        pw
    };
    a.run(&["item", "edit", "Bank", "--generate", "16"]);
    let first = shown(&a);
    a.run(&["item", "edit", "Bank", "--generate", "18"]);
    let second = shown(&a);
    a.run(&["item", "edit", "Bank", "--generate", "20"]);
    let h = json(&a.run(&["--json", "item", "history", "Bank"]));
    let pw = h["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["type"] == "password")
        .unwrap()
        .clone();
    let earlier: Vec<&str> = pw["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        earlier,
        ["••••••••", "••••••••"],
        "masked without --reveal: {pw}"
    );
    let h = json(&a.run(&["--json", "item", "history", "Bank", "--reveal"]));
    let pw = h["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["type"] == "password")
        .unwrap()
        .clone();
    let earlier: Vec<&str> = pw["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    assert!(
        earlier.contains(&first.as_str()) && earlier.contains(&second.as_str()),
        "{pw}"
    );
    assert!(pw["history"][0]["updated_at"].as_i64().unwrap() > 0);
    let text = String::from_utf8(a.run(&["item", "history", "Bank"]).stdout).unwrap();
    assert!(
        text.contains("earlier  ••••••••  (set 20") && !text.contains(&first),
        "{text}"
    );

    // A conflict: both devices change the user name before syncing.
    a.run(&["remote", "add", "shared", &url]);
    a.run(&["sync"]);
    let b = Dev::new(tmp.path(), "phone");
    b.run(&["restore", &url, "--name", "shared"]);
    a.run(&["item", "edit", "Bank", "--username", "from-laptop"]);
    b.run(&["item", "edit", "Bank", "--username", "from-phone"]);
    a.run(&["sync"]);
    b.run(&["sync"]);
    a.run(&["sync"]);
    for d in [&a, &b] {
        let h = json(&d.run(&["--json", "item", "history", "Bank"]));
        let user = h["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["type"] == "username")
            .unwrap()
            .clone();
        let mut values: Vec<String> = user["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["value"].as_str().unwrap().to_string())
            .collect();
        values.push(user["value"].as_str().unwrap().to_string());
        for want in ["me", "from-laptop", "from-phone"] {
            assert!(
                values.iter().any(|v| v == want),
                "{want} is the current value or in the history: {user}"
            );
        }
    }
    let err = a.fail(&["item", "history", "Nope"]);
    assert!(err.contains("no item"), "{err}");
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The EFF list as shipped in the repository.
fn eff_words() -> std::collections::HashSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("vault/wordlists/eff_large_wordlist.txt");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split('\t').nth(1).unwrap().to_string())
        .collect()
}

#[test]
fn generate_passwords_and_passphrases() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Dev::new(tmp.path(), "nodevice"); // generate needs no vault
    let out = d.run(&["generate"]);
    let pw = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(pw.trim_end().chars().count(), 20, "{pw}");
    let err = stderr(&out);
    assert!(err.contains("entropy") && err.contains("strength"), "{err}");

    let v = json(&d.run(&[
        "--json",
        "generate",
        "--length",
        "12",
        "--no-lookalikes",
        "--count",
        "200",
    ]));
    let all = v.as_array().unwrap();
    assert_eq!(all.len(), 200);
    for g in all {
        let p = g["password"].as_str().unwrap();
        assert_eq!(p.chars().count(), 12);
        assert!(!p.chars().any(|c| "0OoIl1|".contains(c)), "{p}");
        assert!(p.chars().any(|c| c.is_ascii_digit()) && p.chars().any(|c| c.is_ascii_uppercase()));
        assert!(g["entropy_bits"].as_f64().unwrap() > 70.0);
        assert!(g["strength"]["level"].is_string());
    }
    let v = json(&d.run(&[
        "--json",
        "generate",
        "--length",
        "8",
        "--no-lower",
        "--no-upper",
        "--no-symbols",
    ]));
    let p = v[0]["password"].as_str().unwrap();
    assert!(p.len() == 8 && p.chars().all(|c| c.is_ascii_digit()), "{p}");
    assert_eq!(v[0]["entropy_bits"], 26.6);
    assert_eq!(v[0]["strength"]["level"], "Very Poor");

    // Passphrases from the shipped EFF list: 12.925 bits a word.
    let words = eff_words();
    assert_eq!(words.len(), 7776);
    let v = json(&d.run(&["--json", "generate", "--words", "6", "--separator", " "]));
    let p = v[0]["password"].as_str().unwrap();
    assert_eq!(p.split(' ').count(), 6);
    assert!(p.split(' ').all(|w| words.contains(w)), "{p}");
    assert_eq!(v[0]["entropy_bits"], 77.5);
    assert!(
        v[0]["strength"]["bits"].as_f64().unwrap() <= 77.5,
        "the Diceware count bounds the estimate"
    );
    // Another list.
    let list = tmp.path().join("mine.txt");
    std::fs::write(&list, "alpha\nbravo\n").unwrap();
    let v = json(&d.run(&[
        "--json",
        "generate",
        "--words",
        "10",
        "--wordlist",
        list.to_str().unwrap(),
    ]));
    let p = v[0]["password"].as_str().unwrap();
    assert!(p.split('-').all(|w| w == "alpha" || w == "bravo"), "{p}");
    assert_eq!(v[0]["entropy_bits"], 10.0);

    // Bad recipes are clear errors.
    for (args, want) in [
        (&["generate", "--length", "2"][..], "length from 4 to 1024"),
        (
            &[
                "generate",
                "--no-lower",
                "--no-upper",
                "--no-digits",
                "--no-symbols",
            ],
            "at least one character class",
        ),
        (&["generate", "--words", "0"], "1 to 64 words"),
        (
            &[
                "generate",
                "--words",
                "3",
                "--wordlist",
                "/nonexistent/list",
            ],
            "cannot read the word list",
        ),
    ] {
        let err = d.fail(args);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    std::fs::write(&list, "only\n").unwrap();
    let err = d.fail(&[
        "generate",
        "--words",
        "3",
        "--wordlist",
        list.to_str().unwrap(),
    ]);
    assert!(err.contains("at least 2 distinct words"), "{err}");
}

#[test]
fn items_get_generated_passwords_and_show_their_strength() {
    let tmp = tempfile::tempdir().unwrap();
    let d = device(tmp.path(), "dev");
    let out = d.run(&["item", "add", "--title", "Mail", "--generate-words", "7"]);
    assert!(
        stderr(&out).contains("entropy 90.5 bits"),
        "{}",
        stderr(&out)
    );
    let v = json(&d.run(&["--json", "item", "show", "Mail", "--reveal"]));
    let pw = v["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["type"] == "password")
        .unwrap()
        .clone();
    assert!(pw["value"].as_str().unwrap().len() >= 7 * 3 + 6);
    assert!(pw["strength"]["level"].is_string(), "{pw}");
    d.run(&["item", "edit", "Bank", "--generate", "24"]);
    let text = String::from_utf8(d.run(&["item", "show", "Bank"]).stdout).unwrap();
    assert!(
        text.contains("strength     Excellent") || text.contains("strength     Good"),
        "{text}"
    );
    let err = d.fail(&["item", "edit", "Bank", "--generate", "4"]);
    assert!(err.contains("from 8 to 256"), "{err}");
}

/// `vault create` and `vault passwd` rate the master password with the KDF bonus:
/// Very Poor is refused unless --force, below Average warned about.
#[test]
fn weak_master_passwords_are_refused_or_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Dev::new(tmp.path(), "weak");
    let err = d
        .cmd(&["vault", "create", "--kdf-iter", "1000"])
        .env("SYNCFABRIC_PASSWORD", "password")
        .output()
        .unwrap();
    assert!(!err.status.success());
    assert!(stderr(&err).contains("Very Poor"), "{}", stderr(&err));
    assert!(!d.vault.join("vault.json").exists(), "nothing was created");
    let out = d
        .cmd(&["vault", "create", "--kdf-iter", "1000"])
        .env("SYNCFABRIC_PASSWORD", "repeating versions")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("warning: this master password is Weak"),
        "{}",
        stderr(&out)
    );
    let out = d
        .cmd(&["vault", "passwd"])
        .env("SYNCFABRIC_PASSWORD", "repeating versions")
        .env("SYNCFABRIC_NEW_PASSWORD", "12345")
        .output()
        .unwrap();
    assert!(
        !out.status.success() && stderr(&out).contains("Very Poor"),
        "{}",
        stderr(&out)
    );
    let out = d
        .cmd(&["vault", "passwd", "--force"])
        .env("SYNCFABRIC_PASSWORD", "repeating versions")
        .env("SYNCFABRIC_NEW_PASSWORD", "12345")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let ok = d
        .cmd(&["item", "list"])
        .env("SYNCFABRIC_PASSWORD", "12345")
        .output()
        .unwrap();
    assert!(ok.status.success(), "forced: the new password is in use");
    // A strong one: no warning.
    let s = Dev::new(tmp.path(), "strong");
    let out = s.run(&["vault", "create", "--kdf-iter", "1000"]);
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

/// `item totp`: RFC 6238's SHA-1 vector through the binary (a base32 secret, then an
/// otpauth URI with SHA-256/SHA-512 and 8 digits), seconds left, and malformed
/// secrets refused with a clear error, the stored value unchanged.
#[test]
fn totp_codes_from_secrets_and_otpauth_uris() {
    let tmp = tempfile::tempdir().unwrap();
    let d = device(tmp.path(), "dev");
    let err = d.fail(&["item", "totp", "Bank"]);
    assert!(err.contains("has no TOTP secret"), "{err}");
    // "12345678901234567890" in base32; RFC 6238 at T=59: SHA-1 94287082 (8 digits).
    let b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    d.run(&["item", "edit", "Bank", "--totp", &b32.to_lowercase()]);
    let v = json(&d.run(&["--json", "item", "totp", "Bank", "--at", "59"]));
    assert_eq!(v["code"], "287082", "the 6-digit code of 94287082");
    assert_eq!(v["seconds_left"], 1);
    let out = d.run(&["item", "totp", "Bank", "--at", "1111111109"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "081804");
    assert!(
        stderr(&out).contains("valid for 1 more second"),
        "{}",
        stderr(&out)
    );
    // Now: a 6-digit code and 1..=30 seconds left (no assertion on the clock).
    let v = json(&d.run(&["--json", "item", "totp", "Bank"]));
    assert_eq!(v["code"].as_str().unwrap().len(), 6);
    assert!((1..=30).contains(&v["seconds_left"].as_u64().unwrap()));

    let seed32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA"; // 32 bytes
    let uri =
        format!("otpauth://totp/ACME%3Ame?secret={seed32}&algorithm=SHA256&digits=8&issuer=ACME");
    d.run(&["item", "edit", "Bank", "--totp", &uri]);
    let v = json(&d.run(&["--json", "item", "totp", "Bank", "--at", "1234567890"]));
    assert_eq!(v["code"], "91819424");
    let seed64 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNA";
    let uri = format!("otpauth://totp/x?secret={seed64}&algorithm=SHA512&digits=8");
    d.run(&["item", "add", "--title", "Bank2", "--totp", &uri]);
    let v = json(&d.run(&["--json", "item", "totp", "Bank2", "--at", "20000000000"]));
    assert_eq!(v["code"], "47863826");

    for (bad, want) in [
        (
            "otpauth://totp/x?issuer=ACME",
            "malformed otpauth URI: no secret parameter",
        ),
        ("otpauth://totp/x", "malformed otpauth URI: no parameters"),
        (
            "otpauth://hotp/x?secret=GEZDGNBV&counter=3",
            "unsupported TOTP parameter: hotp",
        ),
        (
            "otpauth://totp/x?secret=GEZDGNBV&digits=4",
            "unsupported TOTP parameter: digits",
        ),
        ("not base32 at all!", "not valid base32"),
    ] {
        let err = d.fail(&["item", "edit", "Bank2", "--totp", bad]);
        assert!(err.contains(want), "{bad}: {err}");
    }
    let v = json(&d.run(&["--json", "item", "totp", "Bank2", "--at", "20000000000"]));
    assert_eq!(v["code"], "47863826", "a refused value changed nothing");
}

/// `psk new`, `item share`, `item receive` between two unrelated vaults: the item
/// arrives whole; a wrong PSK, a tampered blob and garbage import nothing.
#[test]
fn items_shared_with_a_psk_arrive_whole_and_tampering_imports_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let a = device(tmp.path(), "alice");
    let b = device(tmp.path(), "bob");
    a.run(&[
        "item",
        "edit",
        "Bank",
        "--generate",
        "24",
        "--url",
        "https://bank.example",
        "--totp",
        "GEZDGNBVGY3TQOJQ",
    ]);
    let psk = String::from_utf8(a.run(&["psk", "new"]).stdout)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(psk.len(), 64, "{psk}");
    assert!(psk.split('-').all(|g| g.len() == 4
        && g.chars()
            .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))));
    let other = String::from_utf8(a.run(&["psk", "new"]).stdout)
        .unwrap()
        .trim()
        .to_string();
    assert_ne!(psk, other);

    let blob_file = tmp.path().join("bank.share");
    let out = a
        .cmd(&["item", "share", "Bank", "-o", blob_file.to_str().unwrap()])
        .env("SYNCFABRIC_PSK", &psk)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let blob = std::fs::read_to_string(&blob_file).unwrap();
    assert!(
        blob.starts_with("-----BEGIN SYNCFABRIC SHARED ITEM-----\n"),
        "{blob}"
    );
    let secret_pw = {
        let v = json(&a.run(&["--json", "item", "show", "Bank", "--reveal"]));
        v["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["type"] == "password")
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(!blob.contains(&secret_pw) && !blob.contains("bank.example"));

    let receive = |file: &Path, key: &str| {
        b.cmd(&["item", "receive", file.to_str().unwrap()])
            .env("SYNCFABRIC_PSK", key)
            .output()
            .unwrap()
    };
    // Wrong key: a clear error, nothing imported.
    let out = receive(&blob_file, &other);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("wrong pre-shared key, or the shared item was changed"),
        "{}",
        stderr(&out)
    );
    // Tampered: one base64 character of the body changed.
    let mut lines: Vec<String> = blob.lines().map(str::to_string).collect();
    let line = &mut lines[2];
    let c = line.remove(10);
    line.insert(10, if c == 'A' { 'B' } else { 'A' });
    let tampered = tmp.path().join("tampered.share");
    std::fs::write(&tampered, lines.join("\n")).unwrap();
    let out = receive(&tampered, &psk);
    assert!(
        !out.status.success() && stderr(&out).contains("nothing was imported"),
        "{}",
        stderr(&out)
    );
    // Garbage and a missing file.
    let junk = tmp.path().join("junk.share");
    std::fs::write(&junk, "hello").unwrap();
    let out = receive(&junk, &psk);
    assert!(
        stderr(&out).contains("not a syncfabric shared item"),
        "{}",
        stderr(&out)
    );
    let out = receive(&tmp.path().join("missing.share"), &psk);
    assert!(stderr(&out).contains("cannot read"), "{}", stderr(&out));
    assert_eq!(b.titles(), ["Bank"], "nothing was imported");

    // The right key, from a file: the item arrives as a new item, fields intact.
    let key_file = tmp.path().join("psk.txt");
    std::fs::write(&key_file, format!("{psk}\n")).unwrap();
    let out = b.run(&[
        "--json",
        "item",
        "receive",
        blob_file.to_str().unwrap(),
        "--psk-file",
        key_file.to_str().unwrap(),
    ]);
    let uuid = json(&out)["uuid"].as_str().unwrap().to_string();
    assert_eq!(b.titles(), ["Bank", "Bank"]);
    let v = json(&b.run(&["--json", "item", "show", &uuid, "--reveal"]));
    let field = |t: &str| {
        v["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["type"] == t)
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(field("password"), secret_pw);
    assert_eq!(field("url"), "https://bank.example");
    assert_eq!(field("totp"), "GEZDGNBVGY3TQOJQ");
    let totp = json(&b.run(&["--json", "item", "totp", &uuid, "--at", "59"]));
    assert_eq!(totp["code"].as_str().unwrap().len(), 6);
    // Standard input works too.
    let mut child = b
        .cmd(&["item", "receive", "-"])
        .env("SYNCFABRIC_PSK", &psk)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(blob.as_bytes())
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    assert_eq!(b.titles().len(), 3);
}

/// A fake Pwned Passwords range server on 127.0.0.1: records every request, answers
/// from `answers` (prefix → body) and with padding only for other prefixes.
struct RangeServer {
    url: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

fn range_server(answers: std::collections::HashMap<String, String>) -> RangeServer {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/range/", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (seen2, answers) = (seen.clone(), std::sync::Arc::new(answers));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let (seen, answers) = (seen2.clone(), answers.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let mut request = String::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        request.push_str(&line);
                    }
                    let path = request.split(' ').nth(1).unwrap_or("").to_string();
                    seen.lock().unwrap().push(request);
                    let prefix = path.trim_start_matches("/range/");
                    let padding = "0000000000000000000000000000000000A:0\r\nFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF:0\r\n";
                    let body = format!(
                        "{}{padding}",
                        answers.get(prefix).cloned().unwrap_or_default()
                    );
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if conn.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    RangeServer { url, seen }
}

fn sha1_upper(s: &str) -> String {
    hex::encode_upper(openssl::sha::sha1(s.as_bytes()))
}

/// `audit`: weak, reused and old passwords; with --breached, the fake range server
/// sees only 5-character prefixes (one request per distinct prefix: answers are
/// cached), `Add-Padding: true` on each, and a suffix listed with count 0 (padding)
/// is not reported as breached.
#[test]
fn audit_reports_weak_reused_old_and_breached_sending_only_prefixes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Dev::new(tmp.path(), "dev");
    d.run(&["vault", "create", "--kdf-iter", "1000"]);
    let add = |title: &str, pw: &str| {
        let out = d
            .cmd(&["item", "add", "--title", title, "--ask-password"])
            .env("SYNCFABRIC_ITEM_PASSWORD", pw)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    };
    let quiet = "Tr0ub4dor&3-quiet-lantern-harbor";
    add("Bank", "password");
    add("Mail", "password");
    add("Shop", quiet);
    d.run(&["item", "add", "--title", "Strong", "--generate", "24"]);
    d.run(&["item", "add", "--title", "NoPassword"]);

    // Offline: weak and reused, nothing old yet, no request.
    let v = json(&d.run(&["--json", "audit"]));
    assert_eq!(v["checked"], 4, "{v}");
    assert_eq!(v["weak"], 2);
    assert_eq!(v["reused"], 2);
    assert_eq!(v["old"], 0);
    assert!(v["breached"].is_null());
    let v = json(&d.run(&["--json", "audit", "--days", "0"]));
    assert_eq!(v["old"], 4, "--days 0: every password is old");

    let h_pw = sha1_upper("password");
    let (p_pw, s_pw) = (h_pw[..5].to_string(), h_pw[5..].to_string());
    let h_quiet = sha1_upper(quiet);
    let mut answers = std::collections::HashMap::new();
    answers.insert(p_pw.clone(), format!("{s_pw}:3861493\r\n"));
    // The quiet password's own suffix, but as a padding line (count 0).
    answers.insert(h_quiet[..5].to_string(), format!("{}:0\r\n", &h_quiet[5..]));
    let server = range_server(answers);
    let v = json(&d.run(&["--json", "audit", "--breached", "--endpoint", &server.url]));
    assert_eq!(v["breached"], 2, "{v}");
    assert_eq!(v["breach_requests"], 3, "one request per distinct prefix");
    let item = |t: &str| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["title"] == t)
            .unwrap()
            .clone()
    };
    assert_eq!(item("Bank")["breached"], 3861493);
    assert_eq!(item("Mail")["breached"], 3861493);
    assert_eq!(
        item("Shop")["breached"],
        0,
        "a padding line is not a breach"
    );
    assert_eq!(item("Strong")["breached"], 0);

    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let strong_pw = {
        let v = json(&d.run(&["--json", "item", "show", "Strong", "--reveal"]));
        v["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["type"] == "password")
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for req in &seen {
        let first = req.lines().next().unwrap();
        let path = first.split(' ').nth(1).unwrap();
        let prefix = path
            .strip_prefix("/range/")
            .unwrap_or_else(|| panic!("{first}"));
        assert!(
            prefix.len() == 5
                && prefix
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()),
            "{first}"
        );
        assert!(
            req.to_ascii_lowercase().contains("add-padding: true"),
            "{req}"
        );
        for secret in [
            s_pw.as_str(),
            &h_quiet[5..],
            "password",
            quiet,
            &strong_pw,
            &sha1_upper(&strong_pw)[5..],
        ] {
            assert!(
                !req.contains(secret),
                "a request carried more than a prefix: {req}"
            );
        }
    }
    // The text report names them.
    let text = String::from_utf8(
        d.run(&["audit", "--breached", "--endpoint", &server.url])
            .stdout,
    )
    .unwrap();
    assert!(
        text.contains("seen 3861493 times in breaches") && text.contains("reused in 1 other item"),
        "{text}"
    );

    // An unreachable service is a clear error.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/range/", l.local_addr().unwrap())
    };
    let err = d.fail(&["audit", "--breached", "--endpoint", &closed]);
    assert!(err.contains("could not be reached"), "{err}");
}

/// Each sync says what it did: items in and out, conflicts and where the losing values
/// went, attachments moved; `status` shows dates a person reads, and `--changes` what
/// each journal commit changed.
#[test]
fn sync_summaries_and_readable_status() {
    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let url = format!("folder://{}", shared.display());
    let a = device(tmp.path(), "laptop");
    a.run(&["remote", "add", "shared", &url]);
    let v = json(&a.run(&["--json", "sync"]));
    assert_eq!(v[0]["items_out"]["new"], 1, "the first push: {v}");
    let b = Dev::new(tmp.path(), "phone");
    b.run(&["restore", &url, "--name", "shared"]);

    a.run(&["item", "add", "--title", "Mail"]);
    a.run(&["item", "edit", "Bank", "--username", "new-me"]);
    let file = tmp.path().join("big.bin");
    std::fs::write(&file, bytes(3, 5000)).unwrap();
    a.run(&["item", "attach", "Bank", file.to_str().unwrap()]);
    let v = json(&a.run(&["--json", "sync"]));
    assert_eq!(
        v[0]["items_out"],
        serde_json::json!({"total": 2, "new": 1, "changed": 1, "deleted": 0}),
        "{v}"
    );
    assert_eq!(v[0]["items_in"]["total"], 0);
    assert_eq!(v[0]["attachments"]["uploaded"], 1);
    let out = b.run(&["sync"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("in   2 items (1 new, 1 changed)") && text.contains("out  no item"),
        "{text}"
    );
    assert!(text.contains("attachments: 1 downloaded"), "{text}");

    // Both change the same field: one conflict, and where the loser went.
    a.run(&["item", "edit", "Bank", "--username", "laptop-name"]);
    b.run(&["item", "edit", "Bank", "--username", "phone-name"]);
    b.run(&["item", "rm", "Mail"]);
    a.run(&["sync"]);
    let text = String::from_utf8(b.run(&["sync"]).stdout).unwrap();
    assert!(
        text.contains(" resolved; each losing value is kept")
            && text.contains("syncfabric item history TITLE"),
        "{text}"
    );
    assert!(
        text.contains("in   1 item (1 changed)"),
        "the losing value came into the history: {text}"
    );
    assert!(
        text.contains("1 deleted"),
        "the phone's delete went out: {text}"
    );

    // watch says the same after each sync.
    a.run(&["item", "add", "--title", "Watched"]);
    a.run(&["sync"]);
    let text = String::from_utf8(b.run(&["watch", "--max-syncs", "1"]).stdout).unwrap();
    assert!(
        text.contains("shared: Pulled") && text.contains("in   1 item (1 new)"),
        "{text}"
    );

    // Status: dates, never a bare unix number.
    let text = String::from_utf8(b.run(&["status"]).stdout).unwrap();
    assert!(
        text.contains("last sync 20") && text.contains(" ago)") || text.contains("just now)"),
        "{text}"
    );
    assert!(!text.contains("unix"), "{text}");
    // In the local zone: a POSIX TZ string needs no time-zone database.
    let out = b.cmd(&["status"]).env("TZ", "JST-9").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(" JST ("), "{text}");
    let out = b.cmd(&["status"]).env("TZ", "UTC0").output().unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().contains(" UTC ("));
    let text = String::from_utf8(b.run(&["status", "--changes"]).stdout).unwrap();
    assert!(
        text.contains("changed ") && text.contains("holds "),
        "{text}"
    );
    let v = json(&b.run(&["--json", "status", "--changes"]));
    let journal = v[0]["journal"].as_array().unwrap();
    assert!(journal.len() >= 2, "{v}");
    assert!(
        journal.iter().all(|e| e["changed"]["total"].is_u64()),
        "{v}"
    );
}

/// `item share` carries the item's attachments (inline and file-stored ones); `item
/// receive` stores them in the other vault byte for byte; `--no-attachments` leaves
/// them out, and attachments too large for a blob are a clear refusal.
#[test]
fn shared_items_carry_their_attachments() {
    let tmp = tempfile::tempdir().unwrap();
    let a = device(tmp.path(), "alice");
    let b = device(tmp.path(), "bob");
    let small = tmp.path().join("note.txt");
    std::fs::write(&small, b"inline note").unwrap();
    let big_content = bytes(3, 2 * 1024 * 1024 + 5);
    let big = tmp.path().join("scan.pdf");
    std::fs::write(&big, &big_content).unwrap();
    a.run(&["item", "attach", "Bank", small.to_str().unwrap()]);
    a.run(&["item", "attach", "Bank", big.to_str().unwrap()]);
    a.run(&["item", "detach", "Bank", "note.txt"]);
    a.run(&["item", "attach", "Bank", small.to_str().unwrap()]);
    let share = |extra: &[&str], name: &str| {
        let file = tmp.path().join(name);
        let mut args = vec!["item", "share", "Bank", "-o", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = a
            .cmd(&args)
            .env("SYNCFABRIC_PSK", "k1 k2 k3")
            .output()
            .unwrap();
        (out, file)
    };
    let (out, with) = share(&[], "with.share");
    assert!(out.status.success(), "{}", stderr(&out));
    let (out, without) = share(&["--no-attachments"], "without.share");
    assert!(out.status.success(), "{}", stderr(&out));
    let receive = |file: &Path| {
        let out = b
            .cmd(&["--json", "item", "receive", file.to_str().unwrap()])
            .env("SYNCFABRIC_PSK", "k1 k2 k3")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        json(&out)["uuid"].as_str().unwrap().to_string()
    };
    let uuid = receive(&with);
    let list = json(&b.run(&["--json", "item", "attachments", &uuid]));
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["scan.pdf", "note.txt"], "live ones only, in order");
    assert_eq!(list[0]["stored"], "file");
    assert_eq!(list[0]["mime"], "application/pdf");
    let out = b.run(&["item", "extract", &uuid, "scan.pdf"]);
    assert!(out.stdout == big_content, "the file arrives byte for byte");
    let out = b.run(&["item", "extract", &uuid, "note.txt"]);
    assert_eq!(out.stdout, b"inline note");

    let uuid = receive(&without);
    let list = json(&b.run(&["--json", "item", "attachments", &uuid]));
    assert_eq!(list.as_array().unwrap().len(), 0, "{list}");

    // Over a blob's limit: refused, with what to do, and nothing written.
    let huge = tmp.path().join("huge.bin");
    std::fs::write(&huge, bytes(5, 10 * 1024 * 1024)).unwrap();
    a.run(&["item", "attach", "Bank", huge.to_str().unwrap()]);
    let (out, file) = share(&[], "huge.share");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--no-attachments"),
        "{}",
        stderr(&out)
    );
    assert!(!file.exists());
}
