//! Devices as separate OS processes (the real `syncfabric` binary), and a crash
//! harness that SIGKILLs a sync at random moments.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use syncfabric::vault::{Secret, Vault};

mod common;
use common::{Dev, PW};

fn setup(root: &Path, n: usize) -> (Vec<Dev>, PathBuf) {
    let shared = root.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let url = format!("folder://{}", shared.display());
    let a = Dev::new(root, "dev0");
    a.run(&["vault", "create", "--name", "Proc", "--kdf-iter", "1000"]);
    a.run(&["remote", "add", "shared", &url]);
    a.run(&["sync"]);
    let mut devs = vec![a];
    for i in 1..n {
        let d = Dev::new(root, &format!("dev{i}"));
        d.run(&["restore", &url, "--name", "shared"]);
        devs.push(d);
    }
    (devs, shared)
}

#[test]
fn device_processes_syncing_at_once_converge() {
    let tmp = tempfile::tempdir().unwrap();
    let (devs, _) = setup(tmp.path(), 4);
    let mut expected = Vec::new();
    for round in 0..3 {
        for (i, d) in devs.iter().enumerate() {
            let title = format!("p{i} r{round}");
            d.run(&["item", "add", "--title", &title, "--generate", "12"]);
            expected.push(title);
        }
        // All devices sync at the same moment, as separate processes.
        let children: Vec<_> = devs
            .iter()
            .map(|d| {
                d.cmd(&["sync"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    for _ in 0..2 {
        for d in &devs {
            d.run(&["sync"]);
        }
    }
    expected.sort();
    for d in &devs {
        assert_eq!(d.titles(), expected);
    }
}

fn remote_db(shared: &Path) -> PathBuf {
    let dir = std::fs::read_dir(shared)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("vault.enpassdb").exists())
        .unwrap();
    dir.join("vault.enpassdb")
}

/// Kills `syncfabric sync` with SIGKILL at a random moment, many times. After every
/// kill the local vault opens and passes `PRAGMA integrity_check`, the remote opens,
/// and the next sync completes with every item made so far.
/// Runs: `SYNCFABRIC_CRASH_RUNS` (default 100).
#[test]
fn sigkill_at_random_points_never_corrupts_or_loses() {
    let runs: usize = std::env::var("SYNCFABRIC_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let tmp = tempfile::tempdir().unwrap();
    let (devs, shared) = setup(tmp.path(), 2);
    let (a, b) = (&devs[0], &devs[1]);
    // How long an undisturbed sync takes here, so kills land inside one.
    a.run(&["item", "add", "--title", "calibrate"]);
    let t = Instant::now();
    a.run(&["sync"]);
    let span = t.elapsed().as_micros().max(1000) as u64;
    b.run(&["sync"]);
    let mut expected = vec!["calibrate".to_string()];
    let mut seed: u64 = std::env::var("SYNCFABRIC_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let mut killed_mid_sync = 0;
    let mut killed_after_commit = 0;
    for run in 0..runs {
        // Alternate devices, so both pull and push get interrupted.
        let d = if run % 2 == 0 { a } else { b };
        let title = format!("crash {run}");
        d.run(&["item", "add", "--title", &title]);
        expected.push(title);
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_micros((seed >> 33) % (span + span / 5));
        let remote_before = std::fs::read(remote_db(&shared)).unwrap();
        let mut child = d
            .cmd(&["sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        if !status.success() {
            killed_mid_sync += 1;
            if std::fs::read(remote_db(&shared)).unwrap() != remote_before {
                // Killed after the commit point, before the sync could finish.
                killed_after_commit += 1;
            }
        }
        // The local vault opens and passes integrity_check.
        let v = Vault::open(&d.vault, &Secret::new(PW), None).unwrap_or_else(|e| {
            panic!("run {run} (delay {delay:?}): local vault does not open: {e}")
        });
        v.verify()
            .unwrap_or_else(|e| panic!("run {run}: local vault fails verification: {e}"));
        // The remote opens.
        syncfabric::vault::read_snapshot_file(remote_db(&shared), v.key())
            .unwrap_or_else(|e| panic!("run {run}: remote does not open: {e}"));
        drop(v);
    }
    // The next syncs complete and nothing is lost.
    for _ in 0..2 {
        a.run(&["sync"]);
        b.run(&["sync"]);
    }
    expected.sort();
    assert_eq!(a.titles(), expected);
    assert_eq!(b.titles(), expected);
    eprintln!(
        "{runs} runs: {killed_mid_sync} killed before the sync finished, {killed_after_commit} of them after the remote commit"
    );
    assert!(
        killed_mid_sync * 4 >= runs,
        "too few kills landed inside a sync ({killed_mid_sync}/{runs})"
    );
}

/// `syncfabric watch` on one device picks up a change another device pushes, without
/// being asked to sync.
#[test]
fn watch_sees_another_devices_push() {
    let tmp = tempfile::tempdir().unwrap();
    let (devs, _) = setup(tmp.path(), 2);
    let (a, b) = (&devs[0], &devs[1]);
    let mut watcher = b
        .cmd(&["watch", "--interval", "1", "--max-syncs", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let the watcher make its first sync and set up its feeds.
    std::thread::sleep(Duration::from_millis(1500));
    a.run(&["item", "add", "--title", "pushed while watching"]);
    a.run(&["sync"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = watcher.try_wait().unwrap() {
            let out = watcher.wait_with_output().unwrap();
            assert!(status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("Pulled"),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );
            break;
        }
        if Instant::now() > deadline {
            let _ = watcher.kill();
            panic!("watch did not pick up the change within its deadline");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(b.titles().contains(&"pushed while watching".to_string()));
}

/// A full local disk, simulated with a file-size limit on the sync process (writes past
/// it fail as they would on a full disk): the sync fails with a clear error, the local
/// vault is untouched and still verifies, and a later sync with room completes.
#[test]
fn a_full_local_disk_fails_cleanly_and_the_next_sync_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let (devs, _) = setup(tmp.path(), 2);
    let (a, b) = (&devs[0], &devs[1]);
    for i in 0..200 {
        a.run(&[
            "item",
            "add",
            "--title",
            &format!("bulk {i}"),
            "--generate",
            "16",
        ]);
    }
    a.run(&["sync"]);
    let before = std::fs::read(b.vault.join("vault.enpassdb")).unwrap();
    // 'ulimit -f' counts 1 KiB blocks here; SIGXFSZ is ignored so a write past the
    // limit fails with an error (EFBIG) instead of killing the process.
    let limit_kib = before.len() / 1024 / 2;
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {limit_kib}; exec \"$0\" --vault \"$1\" sync"
        ))
        .arg(env!("CARGO_BIN_EXE_syncfabric"))
        .arg(&b.vault)
        .env("SYNCFABRIC_PASSWORD", PW)
        .env("SYNCFABRIC_CONFIG", &b.config)
        .stdin(Stdio::null());
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("with no room: {stderr}");
    assert!(
        !out.status.success(),
        "the sync must fail without room: {stderr}"
    );
    assert!(
        stderr.starts_with("error:"),
        "one clear error line: {stderr}"
    );
    assert_eq!(
        std::fs::read(b.vault.join("vault.enpassdb")).unwrap(),
        before,
        "local vault untouched"
    );
    let v = Vault::open(&b.vault, &Secret::new(PW), None).unwrap();
    v.verify().unwrap();
    drop(v);
    b.run(&["sync"]);
    assert_eq!(a.titles(), b.titles());
}

/// `remote add` says what the probe proved and why, at default verbosity, and records
/// it; a config written before versions were measured is probed again by `sync` and
/// the verdict recorded, so no device keeps comparing versions nobody measured.
#[test]
fn the_probe_verdict_is_shown_recorded_and_refreshed_when_incomplete() {
    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let url = format!("folder://{}", shared.display());
    let a = Dev::new(tmp.path(), "dev0");
    a.run(&["vault", "create", "--name", "Proc", "--kdf-iter", "1000"]);
    let out = a.run(&["remote", "add", "shared", &url]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("commits: truthful"), "{said}");
    assert!(
        said.contains("why: the storage enforces compare-and-swap"),
        "{said}"
    );
    assert!(said.contains("strong versions: true"), "{said}");
    let config = std::fs::read_to_string(&a.config).unwrap();
    assert!(config.contains("versions = \"strong\""), "{config}");
    // As an older syncfabric wrote it: no `versions`.
    let old: String = config
        .lines()
        .filter(|l| !l.starts_with("versions"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&a.config, old).unwrap();
    a.run(&["sync"]);
    let config = std::fs::read_to_string(&a.config).unwrap();
    assert!(config.contains("versions = \"strong\""), "{config}");
}

/// A "copy" that does not open with the vault's key (another vault's database) and a
/// damaged one are named with the reason and left where they are by `sync
/// --merge-copies`; the sync itself succeeds.
#[test]
fn sync_merge_copies_leaves_an_unreadable_copy_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let (devs, shared) = setup(tmp.path(), 1);
    let remote_db = remote_db(&shared);
    let foreign = remote_db.with_file_name("vault (Eve's conflicted copy 2026-12-02).enpassdb");
    let other = tmp.path().join("other-vault");
    let opts = syncfabric::vault::CreateOptions {
        kdf_iter: 1000,
        ..Default::default()
    };
    let mut v = Vault::create(&other, &Secret::new(PW), &opts).unwrap();
    v.copy_database_to(&foreign).unwrap();
    drop(v);
    let damaged = remote_db.with_file_name("vault 2.enpassdb");
    std::fs::write(&damaged, [0x5a; 4096]).unwrap();
    let before = devs[0].titles();

    let out = devs[0].run(&["sync", "--merge-copies"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Eve's conflicted copy"), "{text}");
    assert!(text.contains("vault 2.enpassdb"), "{text}");
    assert_eq!(text.matches("left in place").count(), 2, "{text}");
    assert!(foreign.exists() && damaged.exists());
    assert_eq!(devs[0].titles(), before);

    let out = devs[0].run(&["--json", "sync", "--merge-copies"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let copies = v[0]["conflict_copies"].as_array().unwrap();
    assert_eq!(copies.len(), 2, "{v}");
    assert!(copies
        .iter()
        .all(|c| c["merged"] == false && c["error"].is_string()));
}

/// `sync` names a desktop client's conflict copy and leaves it; `sync --merge-copies`
/// merges it, pushes, removes it, and says so (in `--json` too).
#[test]
fn sync_names_conflict_copies_and_merges_them_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let (devs, shared) = setup(tmp.path(), 2);
    devs[1].run(&["item", "add", "--title", "Only in the copy"]);
    let remote_db = remote_db(&shared);
    let copy = remote_db.with_file_name("vault (Bob's conflicted copy 2026-12-01).enpassdb");
    let mut v = Vault::open(&devs[1].vault, &Secret::new(PW), None).unwrap();
    v.copy_database_to(&copy).unwrap();
    drop(v);
    devs[0].run(&["item", "add", "--title", "Only here"]);

    let out = devs[0].run(&["sync"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("conflicted copy") && text.contains("--merge-copies"),
        "{text}"
    );
    assert!(copy.exists());
    assert!(!devs[0].titles().contains(&"Only in the copy".to_string()));

    let out = devs[0].run(&["--json", "sync", "--merge-copies"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &v[0]["conflict_copies"][0];
    assert_eq!(
        (&c["merged"], &c["removed"]),
        (&true.into(), &true.into()),
        "{v}"
    );
    assert!(!copy.exists(), "the merged copy is removed");
    let want = ["Only here", "Only in the copy"];
    assert!(want
        .iter()
        .all(|t| devs[0].titles().contains(&t.to_string())));
    devs[1].run(&["sync"]);
    assert!(want
        .iter()
        .all(|t| devs[1].titles().contains(&t.to_string())));
}
