//! Progress of transfers (#5): what the engine tells a progress hook during a real sync
//! over the folder provider, and what the `syncfabric` binary draws on a terminal (run
//! under a pseudo-terminal with util-linux `script`) and does not draw otherwise.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use syncfabric::core::progress::{Direction, Phase, ProgressHook, Update};
use syncfabric::core::{
    Body, Capabilities, Download, Entry, Error, Precondition, RemotePath, Storage,
};
use syncfabric::engine::{
    restore_from_remote_with_progress, sync_vault, StateDir, SyncOptions, SyncOutcome,
};
use syncfabric::folder::FolderStorage;
use syncfabric::vault::{CreateOptions, NewItem, Secret, Vault};

mod common;
use common::as_claimed;

const PW: &str = "correct horse battery staple";

/// One update as recorded: (phase, attempt, done, total).
type Rec = (Phase, u32, u64, Option<u64>);

/// (direction, label, remote path) of one transfer.
type Key = (String, String, String);

/// Every update, grouped by transfer, in arrival order.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<BTreeMap<Key, Vec<Rec>>>>);

impl Recorder {
    fn hook(&self) -> ProgressHook {
        let log = self.0.clone();
        ProgressHook::new(move |u: &Update<'_>| {
            let dir = match u.transfer.direction {
                Direction::Upload => "up",
                Direction::Download => "down",
            };
            let key = (
                dir.to_string(),
                u.transfer.label.clone(),
                u.transfer.path.as_str().to_string(),
            );
            log.lock()
                .unwrap()
                .entry(key)
                .or_default()
                .push((u.phase, u.attempt, u.done, u.total));
        })
    }
    fn take(&self) -> BTreeMap<Key, Vec<Rec>> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// The documented order for one transfer that succeeded: `Started` at 0; within an
/// attempt counts only grow; a restart goes back to 0 with the attempt one up; the
/// last update is `Finished` with `done == size` (and the last count reached it).
/// Returns the number of attempts.
fn check_finished(what: &str, recs: &[Rec], size: u64) -> u32 {
    assert_eq!(
        recs.first().map(|r| (r.0, r.1, r.2)),
        Some((Phase::Started, 1, 0)),
        "{what}: {recs:?}"
    );
    let (mut attempt, mut last) = (1, 0);
    for (i, &(phase, a, done, total)) in recs.iter().enumerate().skip(1) {
        match phase {
            Phase::Advanced => {
                assert!(a == attempt && done > last, "{what}: not growing: {recs:?}");
                assert!(done <= size, "{what}: past the size: {recs:?}");
            }
            Phase::Restarted => {
                assert_eq!((a, done), (attempt + 1, 0), "{what}: {recs:?}");
                attempt = a;
            }
            Phase::Finished => {
                assert_eq!(i, recs.len() - 1, "{what}: updates after the end: {recs:?}");
                assert_eq!((done, total), (size, Some(size)), "{what}: {recs:?}");
            }
            Phase::Started | Phase::Failed => panic!("{what}: unexpected {phase:?}: {recs:?}"),
        }
        last = done;
    }
    assert_eq!(recs.last().map(|r| r.0), Some(Phase::Finished), "{what}");
    attempt
}

fn new_vault(dir: &Path) -> Vault {
    let opts = CreateOptions {
        kdf_iter: 1000,
        name: "Test".into(),
        ..Default::default()
    };
    Vault::create(dir, &Secret::new(PW), &opts).unwrap()
}

fn remote_size(root: &Path, path: &str) -> u64 {
    std::fs::metadata(root.join(path)).unwrap().len()
}

/// A storage that cuts the next read of a `*.enpassdb` file after half its bytes
/// (announcing the full size), as a connection reset mid-body would; other calls go
/// through.
#[derive(Debug)]
struct CutOnce {
    inner: Arc<dyn Storage>,
    armed: AtomicBool,
}

#[async_trait::async_trait]
impl Storage for CutOnce {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn describe(&self) -> String {
        format!("cut-once {}", self.inner.describe())
    }
    async fn stat(&self, path: &RemotePath) -> syncfabric::core::Result<Option<Entry>> {
        self.inner.stat(path).await
    }
    async fn list(&self, dir: &RemotePath) -> syncfabric::core::Result<Vec<Entry>> {
        self.inner.list(dir).await
    }
    async fn read(&self, path: &RemotePath) -> syncfabric::core::Result<Download> {
        use futures_util::StreamExt;
        let mut d = self.inner.read(path).await?;
        if !(path.as_str().ends_with(".enpassdb") && self.armed.swap(false, Ordering::SeqCst)) {
            return Ok(d);
        }
        let mut all = Vec::new();
        while let Some(c) = d.stream.next().await {
            all.extend_from_slice(&c?);
        }
        let half = Bytes::from(all[..all.len() / 2].to_vec());
        let items: Vec<Result<Bytes, Error>> =
            vec![Ok(half), Err(Error::transient("connection reset (test)"))];
        Ok(Download {
            version: d.version,
            size: Some(all.len() as u64),
            stream: Box::pin(futures_util::stream::iter(items)),
        })
    }
    async fn write(
        &self,
        path: &RemotePath,
        body: Body,
        pre: Precondition,
    ) -> syncfabric::core::Result<Entry> {
        self.inner.write(path, body, pre).await
    }
    async fn delete(&self, path: &RemotePath, pre: Precondition) -> syncfabric::core::Result<()> {
        self.inner.delete(path, pre).await
    }
    async fn create_dir(&self, path: &RemotePath) -> syncfabric::core::Result<()> {
        self.inner.create_dir(path).await
    }
}

/// Device A pushes a vault with an attachment file; device B restores it; A edits and
/// B pulls through a connection that breaks off half-way through the database once.
/// Every transfer's updates follow the documented order and end at the file's size.
#[tokio::test]
async fn the_hook_sees_growing_counts_that_end_at_each_file_size() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("remote");
    std::fs::create_dir_all(&root).unwrap();
    let folder: Arc<dyn Storage> = Arc::new(FolderStorage::new(&root).unwrap());
    let rec = Recorder::default();
    let opts = SyncOptions {
        progress: Some(rec.hook()),
        ..Default::default()
    };

    // A: one item with a 300 KB attachment (a file of its own, not inline).
    let mut a = new_vault(&tmp.path().join("a"));
    let a_state = StateDir::open(tmp.path().join("a-state")).unwrap();
    let item = a
        .add_item(NewItem::login("Bank", "me", Secret::new("pw"), ""))
        .unwrap();
    let blob: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    a.add_attachment(
        &item.uuid,
        "scan.bin",
        "application/octet-stream",
        &mut &blob[..],
    )
    .unwrap();
    let uuid = a.meta().vault_uuid().unwrap().to_string();
    let r = sync_vault(&mut a, &as_claimed(folder.clone()), &a_state, &opts)
        .await
        .unwrap();
    assert_eq!(r.outcome, SyncOutcome::Pushed);

    let attach: Vec<PathBuf> = std::fs::read_dir(root.join(&uuid))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "enpassattach"))
        .collect();
    assert_eq!(attach.len(), 1);
    let attach_name = attach[0].file_name().unwrap().to_str().unwrap().to_string();
    let attach_path = format!("{uuid}/{attach_name}");
    let db_path = format!("{uuid}/vault.enpassdb");
    let json_path = format!("{uuid}/vault.json");
    let key = |d: &str, l: &str, p: &str| (d.to_string(), l.to_string(), p.to_string());

    let pushed = rec.take();
    let want: Vec<_> = vec![
        key("up", "attachment 1 of 1", &attach_path),
        key("up", "database", &db_path),
        key("up", "vault.json", &json_path),
    ];
    assert_eq!(pushed.keys().cloned().collect::<Vec<_>>(), want);
    for (k, recs) in &pushed {
        let size = remote_size(&root, &k.2);
        assert_eq!(check_finished(&k.1, recs, size), 1);
    }
    // The folder provider reads the body through Body::open, so the counts between
    // start and end are real (the database and the attachment are bigger than a chunk).
    for k in &want[..2] {
        let adv = pushed[k].iter().filter(|r| r.0 == Phase::Advanced).count();
        assert!(
            adv >= 1,
            "{k:?}: no counts while uploading: {:?}",
            pushed[k]
        );
    }

    // B: restore from the remote, with progress.
    let b_dir = tmp.path().join("b");
    let b_state = StateDir::open(tmp.path().join("b-state")).unwrap();
    let mut b = restore_from_remote_with_progress(
        &as_claimed(folder.clone()),
        &uuid,
        &b_dir,
        &b_state,
        &Secret::new(PW),
        None,
        opts.progress.as_ref(),
    )
    .await
    .unwrap();
    let restored = rec.take();
    assert_eq!(
        restored.keys().cloned().collect::<Vec<_>>(),
        vec![
            key("down", "attachment 1 of 1", &attach_path),
            key("down", "database", &db_path),
            key("down", "vault.json", &json_path),
        ]
    );
    for (k, recs) in &restored {
        assert_eq!(check_finished(&k.1, recs, remote_size(&root, &k.2)), 1);
    }

    // A edits; B pulls through a connection that breaks off half-way once.
    a.add_item(NewItem::login("Mail", "me", Secret::new("m"), ""))
        .unwrap();
    sync_vault(&mut a, &as_claimed(folder.clone()), &a_state, &opts)
        .await
        .unwrap();
    rec.take();
    let cut: Arc<dyn Storage> = Arc::new(CutOnce {
        inner: folder.clone(),
        armed: AtomicBool::new(true),
    });
    let r = sync_vault(&mut b, &as_claimed(cut), &b_state, &opts)
        .await
        .unwrap();
    assert_eq!(r.outcome, SyncOutcome::Pulled);
    let pulled = rec.take();
    let db = &pulled[&key("down", "database", &db_path)];
    let size = remote_size(&root, &db_path);
    assert_eq!(check_finished("retried database", db, size), 2, "{db:?}");
    // The first attempt got half the bytes, then the count restarted from 0.
    let restart = db.iter().position(|r| r.0 == Phase::Restarted).unwrap();
    assert_eq!(db[restart - 1], (Phase::Advanced, 1, size / 2, Some(size)));
    assert_eq!(b.items().unwrap().len(), a.items().unwrap().len());
}

/// A failed transfer ends with `Failed`, never `Finished`: the download of a remote
/// whose every read breaks off.
#[tokio::test]
async fn a_download_that_never_completes_ends_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("remote");
    std::fs::create_dir_all(&root).unwrap();
    let folder: Arc<dyn Storage> = Arc::new(FolderStorage::new(&root).unwrap());
    let mut a = new_vault(&tmp.path().join("a"));
    let a_state = StateDir::open(tmp.path().join("a-state")).unwrap();
    sync_vault(
        &mut a,
        &as_claimed(folder.clone()),
        &a_state,
        &SyncOptions::default(),
    )
    .await
    .unwrap();
    let uuid = a.meta().vault_uuid().unwrap().to_string();

    /// Cuts every read of the database.
    #[derive(Debug)]
    struct Always(CutOnce);
    #[async_trait::async_trait]
    impl Storage for Always {
        fn capabilities(&self) -> Capabilities {
            self.0.capabilities()
        }
        fn describe(&self) -> String {
            self.0.describe()
        }
        async fn stat(&self, p: &RemotePath) -> syncfabric::core::Result<Option<Entry>> {
            self.0.stat(p).await
        }
        async fn list(&self, p: &RemotePath) -> syncfabric::core::Result<Vec<Entry>> {
            self.0.list(p).await
        }
        async fn read(&self, p: &RemotePath) -> syncfabric::core::Result<Download> {
            self.0.armed.store(true, Ordering::SeqCst);
            self.0.read(p).await
        }
        async fn write(
            &self,
            p: &RemotePath,
            b: Body,
            pre: Precondition,
        ) -> syncfabric::core::Result<Entry> {
            self.0.write(p, b, pre).await
        }
        async fn delete(&self, p: &RemotePath, pre: Precondition) -> syncfabric::core::Result<()> {
            self.0.delete(p, pre).await
        }
        async fn create_dir(&self, p: &RemotePath) -> syncfabric::core::Result<()> {
            self.0.create_dir(p).await
        }
    }
    let broken = Always(CutOnce {
        inner: folder.clone(),
        armed: AtomicBool::new(true),
    });
    let rec = Recorder::default();
    let err = restore_from_remote_with_progress(
        &as_claimed(Arc::new(broken)),
        &uuid,
        &tmp.path().join("b"),
        &StateDir::open(tmp.path().join("b-state")).unwrap(),
        &Secret::new(PW),
        None,
        Some(&rec.hook()),
    )
    .await;
    assert!(err.is_err());
    let log = rec.take();
    let db = log
        .iter()
        .find(|(k, _)| k.1 == "database")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert_eq!(db.last().map(|r| r.0), Some(Phase::Failed), "{db:?}");
    assert!(db.iter().all(|r| r.0 != Phase::Finished), "{db:?}");
    assert!(db.iter().filter(|r| r.0 == Phase::Restarted).count() >= 1);
}

// ---- the binary ----

struct Cli {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Cli {
    fn new() -> Cli {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        std::fs::create_dir_all(root.join("remote")).unwrap();
        Cli { _tmp: tmp, root }
    }
    fn vault(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SYNCFABRIC_PASSWORD", PW.to_string()),
            (
                "SYNCFABRIC_CONFIG",
                self.root.join("config.toml").display().to_string(),
            ),
            ("SYNCFABRIC_LOG", "warn".to_string()),
        ]
    }
    /// Runs the binary with stdout and stderr as pipes (not terminals).
    fn run(&self, vault: &str, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_syncfabric"))
            .arg("--vault")
            .arg(self.vault(vault))
            .args(args)
            .envs(self.env())
            .env_remove("SYNCFABRIC_VAULT")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
    /// Runs the binary on a pseudo-terminal (util-linux `script`); returns all it
    /// wrote there (stdout and stderr together).
    fn run_tty(&self, vault: &str, args: &[&str]) -> String {
        let mut cmd = vec![
            env!("CARGO_BIN_EXE_syncfabric").to_string(),
            "--vault".into(),
            self.vault(vault).display().to_string(),
        ];
        cmd.extend(args.iter().map(|a| a.to_string()));
        let line = cmd
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
            .collect::<Vec<_>>()
            .join(" ");
        let out = Command::new("script")
            .args(["-q", "-e", "-c", &line, "/dev/null"])
            .envs(self.env())
            .env_remove("SYNCFABRIC_VAULT")
            .env_remove("COLUMNS")
            .stdin(std::process::Stdio::null())
            .output()
            .expect(
                "util-linux `script` (Debian package bsdutils) runs the CLI on a pseudo-terminal",
            );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{args:?}: {text}");
        text
    }
    fn setup(&self) {
        self.run(
            "a",
            &["vault", "create", "--name", "P", "--kdf-iter", "1000"],
        );
        self.run("a", &["item", "add", "--title", "Bank", "--username", "me"]);
        let url = format!("folder://{}", self.root.join("remote").display());
        self.run("a", &["remote", "add", "origin", &url]);
    }
    fn edit(&self, title: &str) {
        self.run("a", &["item", "add", "--title", title, "--username", "me"]);
    }
}

fn has_bar(s: &str) -> bool {
    s.contains('↑') || s.contains('↓') || s.contains("\x1b[K") || s.contains('%')
}

#[test]
fn no_progress_text_when_stderr_is_not_a_terminal() {
    let cli = Cli::new();
    cli.setup();
    let out = cli.run("a", &["sync", "--json"]);
    assert!(!has_bar(&String::from_utf8_lossy(&out.stderr)), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["outcome"], "Pushed", "{v}");
    assert!(v[0]["uploaded_db"].as_bool().unwrap());

    // Text mode, stderr a pipe: no bars either.
    cli.edit("Mail");
    let out = cli.run("a", &["sync"]);
    assert!(!has_bar(&String::from_utf8_lossy(&out.stderr)), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("origin: Pushed"));
}

#[test]
fn bars_on_a_terminal_and_none_with_json_or_quiet() {
    let cli = Cli::new();
    cli.setup();
    // A terminal: the first push shows the database and vault.json going up, with
    // their sizes; a quick transfer's line is wiped before the result is printed.
    let text = cli.run_tty("a", &["sync"]);
    let db = std::fs::read_dir(cli.root.join("remote"))
        .unwrap()
        .map(|e| e.unwrap().path().join("vault.enpassdb"))
        .find(|p| p.exists())
        .unwrap();
    let kib = std::fs::metadata(&db).unwrap().len() as f64 / 1024.0;
    assert!(
        text.contains(&format!("↑ database [------------]   0% 0 B/{kib:.1} KiB")),
        "{text}"
    );
    assert!(text.contains("↑ vault.json ["), "{text}");
    assert!(text.contains("\r\x1b[Korigin: Pushed"), "{text:?}");
    assert!(!text.contains(PW), "{text}");

    // --json on a terminal: the output is the JSON alone.
    cli.edit("Mail");
    let text = cli.run_tty("a", &["--json", "sync"]);
    assert!(!has_bar(&text), "{text}");
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v[0]["outcome"], "Pushed", "{v}");

    // -q on a terminal: no bars.
    cli.edit("Shop");
    let text = cli.run_tty("a", &["-q", "sync"]);
    assert!(text.contains("origin: Pushed") && !has_bar(&text), "{text}");

    // Restore from cloud on a terminal: the downloads are shown.
    let url = format!("folder://{}", cli.root.join("remote").display());
    let text = cli.run_tty("b", &["restore", &url]);
    assert!(text.contains("↓ database ["), "{text}");
    assert!(text.contains("restored vault"), "{text}");
}
