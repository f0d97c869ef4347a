//! Several OS processes racing on one folder, and a writer killed mid-write.
//!
//! The children are this test binary itself, re-executed with `ROLE_ENV` set: the
//! `child_entry` test does nothing unless that variable is there.
#![cfg(unix)]

use bytes::Bytes;
use futures_util::StreamExt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use syncfabric_core::{Body, Error, Precondition, RemotePath, Storage};
use syncfabric_folder::{FolderStorage, TEMP_PREFIX};

const ROLE_ENV: &str = "SYNCFABRIC_FOLDER_TEST_ROLE";
const ROOT_ENV: &str = "SYNCFABRIC_FOLDER_TEST_ROOT";
const COUNT_ENV: &str = "SYNCFABRIC_FOLDER_TEST_COUNT";
const ID_ENV: &str = "SYNCFABRIC_FOLDER_TEST_ID";
const BODY_ENV: &str = "SYNCFABRIC_FOLDER_TEST_BODY";
const LEN_ENV: &str = "SYNCFABRIC_FOLDER_TEST_LEN";

fn p(s: &str) -> RemotePath {
    RemotePath::parse(s).unwrap()
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"))
}

fn child(role: &str, root: &Path, extra: &[(&str, String)]) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, role)
        .env(ROOT_ENV, root)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in extra {
        c.env(k, v);
    }
    c
}

async fn read_all(s: &FolderStorage, path: &RemotePath) -> (syncfabric_core::Version, Vec<u8>) {
    let d = s.read(path).await.unwrap();
    let mut out = Vec::new();
    let mut st = d.stream;
    while let Some(c) = st.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    (d.version.unwrap(), out)
}

/// Entry point of the child processes; a no-op in a normal test run.
#[test]
fn child_entry() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let root = PathBuf::from(env(ROOT_ENV));
    let s = FolderStorage::new(&root).unwrap();
    rt.block_on(async move {
        match role.as_str() {
            // M compare-and-swap increments of "counter".
            "cas" => {
                let m: u64 = env(COUNT_ENV).parse().unwrap();
                let path = p("counter");
                let mut conflicts = 0;
                for _ in 0..m {
                    loop {
                        let (v, bytes) = read_all(&s, &path).await;
                        let n: u64 = String::from_utf8(bytes).unwrap().trim().parse().unwrap();
                        let next = Body::Bytes(Bytes::from((n + 1).to_string()));
                        match s.write(&path, next, Precondition::IfMatch(v)).await {
                            Ok(_) => break,
                            Err(Error::PreconditionFailed { .. }) => conflicts += 1,
                            Err(e) => panic!("child write failed: {e}"),
                        }
                    }
                }
                println!("\nCONFLICTS {conflicts}");
            }
            // One IfAbsent create of "once".
            "create-once" => {
                let id = env(ID_ENV);
                match s
                    .write(
                        &p("once"),
                        Body::Bytes(Bytes::from(id.clone())),
                        Precondition::IfAbsent,
                    )
                    .await
                {
                    Ok(_) => println!("\nRESULT WON {id}"),
                    Err(Error::AlreadyExists { .. }) => println!("\nRESULT LOST {id}"),
                    Err(e) => panic!("child write failed: {e}"),
                }
            }
            // Writes "victim" from a body that is a FIFO the parent feeds slowly.
            "slow-writer" => {
                let body = Body::File {
                    path: PathBuf::from(env(BODY_ENV)),
                    len: env(LEN_ENV).parse().unwrap(),
                };
                let r = s.write(&p("v/victim"), body, Precondition::None).await;
                println!("\nRESULT {r:?}");
            }
            // Holds the folder's lock until killed.
            "hold-lock" => {
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(root.join(syncfabric_folder::LOCK_NAME))
                    .unwrap();
                fs4::FileExt::lock(&f).unwrap();
                println!("\nLOCKED");
                std::io::stdout().flush().unwrap();
                std::thread::sleep(Duration::from_secs(600));
            }
            other => panic!("unknown role {other}"),
        }
    });
    std::io::stdout().flush().unwrap();
    // Do not fall through into the rest of the test harness's output handling.
    std::process::exit(0);
}

#[tokio::test]
async fn processes_racing_compare_and_swap_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let s = FolderStorage::new(dir.path()).unwrap();
    s.write(
        &p("counter"),
        Body::Bytes(Bytes::from_static(b"0")),
        Precondition::IfAbsent,
    )
    .await
    .unwrap();
    let n = 4;
    let m = 40;
    let children: Vec<_> = (0..n)
        .map(|_| {
            child("cas", dir.path(), &[(COUNT_ENV, m.to_string())])
                .spawn()
                .unwrap()
        })
        .collect();
    let mut conflicts = 0u64;
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "child failed: {:?}", out.status);
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.starts_with("CONFLICTS "))
            .unwrap_or_else(|| panic!("child did not report: {text}"));
        conflicts += line["CONFLICTS ".len()..].trim().parse::<u64>().unwrap();
    }
    let (_, bytes) = read_all(&s, &p("counter")).await;
    assert_eq!(String::from_utf8(bytes).unwrap(), (n * m).to_string());
    eprintln!("{n} processes x {m} increments: {conflicts} precondition failures retried");
    // No temp file left behind by any child.
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with(TEMP_PREFIX), "{name}");
    }
}

#[tokio::test]
async fn processes_racing_if_absent_have_one_winner() {
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let children: Vec<_> = (0..5)
            .map(|i| {
                child("create-once", dir.path(), &[(ID_ENV, format!("child-{i}"))])
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut winners = Vec::new();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success());
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let line = text
                .lines()
                .find(|l| l.starts_with("RESULT "))
                .expect("child reported")
                .to_string();
            if let Some(id) = line.strip_prefix("RESULT WON ") {
                winners.push(id.to_string());
            } else {
                assert!(line.starts_with("RESULT LOST "), "{line}");
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("once")).unwrap(),
            winners[0]
        );
    }
}

#[tokio::test]
async fn a_writer_killed_mid_write_leaves_the_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let s = FolderStorage::new(&root).unwrap();
    let before = s
        .write(
            &p("v/victim"),
            Body::Bytes(Bytes::from_static(b"previous version")),
            Precondition::None,
        )
        .await
        .unwrap();

    // The child's body is a FIFO: it blocks reading it until we feed it, so we can kill
    // it at a known point in the middle of its write.
    let fifo = dir.path().join("body.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success(),
        "mkfifo (coreutils) is needed"
    );
    let total: usize = 64 * 1024 * 1024;
    let mut c = child(
        "slow-writer",
        &root,
        &[
            (BODY_ENV, fifo.display().to_string()),
            (LEN_ENV, total.to_string()),
        ],
    )
    .spawn()
    .unwrap();
    let mut feed = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let chunk = vec![0xabu8; 1024 * 1024];
    feed.write_all(&chunk).unwrap();
    feed.write_all(&chunk).unwrap();
    // Wait until the child's temp file holds at least the first megabyte.
    let vdir = root.join("v");
    let deadline = Instant::now() + Duration::from_secs(60);
    let temp = loop {
        let found = std::fs::read_dir(&vdir)
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
            .filter(|e| {
                e.metadata()
                    .map(|m| m.len() >= 1024 * 1024)
                    .unwrap_or(false)
            });
        if let Some(e) = found {
            break e.path();
        }
        assert!(Instant::now() < deadline, "the child never started writing");
        std::thread::sleep(Duration::from_millis(5));
    };
    c.kill().unwrap(); // SIGKILL
    let status = c.wait().unwrap();
    assert!(!status.success());
    drop(feed);

    // The previous version is intact and current.
    let now = s.stat(&p("v/victim")).await.unwrap().unwrap();
    assert_eq!(now.version, before.version);
    assert_eq!(read_all(&s, &p("v/victim")).await.1, b"previous version");
    // The stray temp file is on disk but invisible.
    assert!(temp.exists());
    let listed: Vec<_> = s
        .list(&p("v"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(listed, vec![p("v/victim")]);
    // A compare-and-swap with the old version still works (the folder is not locked).
    let after = s
        .write(
            &p("v/victim"),
            Body::Bytes(Bytes::from_static(b"next")),
            Precondition::IfMatch(before.version.unwrap()),
        )
        .await
        .unwrap();
    assert_ne!(after.version, now.version);
    // Not swept yet: the automatic sweep waits until a stray temp is old.
    assert!(temp.exists());
    // Its writer is dead, so its lock is free: a later write into the folder by a
    // storage whose stale age is zero removes it by itself.
    let eager = FolderStorage::with_options(
        &root,
        syncfabric_folder::FolderOptions {
            stale_temp_age: Duration::ZERO,
            ..Default::default()
        },
    )
    .unwrap();
    eager
        .write(
            &p("v/other"),
            Body::Bytes(Bytes::from_static(b"x")),
            Precondition::None,
        )
        .await
        .unwrap();
    assert!(!temp.exists(), "the stray temp file was not cleaned up");
    assert_eq!(read_all(&s, &p("v/victim")).await.1, b"next");
}

#[tokio::test]
async fn the_lock_excludes_other_processes_and_dies_with_its_holder() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let s = FolderStorage::new(dir.path()).unwrap();
    let v = s
        .write(
            &p("f"),
            Body::Bytes(Bytes::from_static(b"one")),
            Precondition::None,
        )
        .await
        .unwrap();
    let mut c = child("hold-lock", dir.path(), &[]).spawn().unwrap();
    let mut out = std::io::BufReader::new(c.stdout.take().unwrap());
    let mut line = String::new();
    while line.trim() != "LOCKED" {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the child died before locking"
        );
    }
    // A writer with a short patience gives up with a retryable error.
    let impatient = FolderStorage::with_options(
        dir.path(),
        syncfabric_folder::FolderOptions {
            lock_timeout: Duration::from_millis(100),
            ..Default::default()
        },
    )
    .unwrap();
    let e = impatient
        .write(
            &p("f"),
            Body::Bytes(Bytes::from_static(b"two")),
            Precondition::None,
        )
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    // A patient writer waits while the other process holds the lock...
    let s2 = s.clone();
    let version = v.version.clone().unwrap();
    let w = tokio::spawn(async move {
        s2.write(
            &p("f"),
            Body::Bytes(Bytes::from_static(b"three")),
            Precondition::IfMatch(version),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !w.is_finished(),
        "the write went through while another process held the lock"
    );
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"one");
    // ...and goes through once the holder is killed (the kernel drops its lock).
    c.kill().unwrap();
    c.wait().unwrap();
    let e = tokio::time::timeout(Duration::from_secs(30), w)
        .await
        .expect("still blocked")
        .unwrap()
        .unwrap();
    assert_ne!(e.version, v.version);
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"three");
}
