//! A sync that dies while it holds the server's WebDAV lock, on real servers: SabreDAV
//! (grants every lock for 1800 s whatever is asked) and Apache (honours the 60 s
//! asked). The crash is the sync's future dropped while its database upload runs
//! under the lock: no `UNLOCK` is sent and the local lock on the state folder goes, as
//! when the process is killed.
//!
//! Every sync here may wait for a lock at most `WAIT` (10 s), far below what the
//! servers keep the dead run's lock, so a sync that succeeds did not wait for it to
//! expire: the lock was released.
//!
//! `cargo test --test stale_locks`; `SYNCFABRIC_REQUIRE_SERVERS=1` makes a missing
//! server a failure.

mod common;

use std::sync::Arc;
use std::time::Duration;
use syncfabric::core::progress::{Direction, Phase, ProgressHook, Update};
use syncfabric::core::RemotePath;
use syncfabric::engine::{restore_from_remote, sync_vault, StateDir, SyncOptions};
use syncfabric::remote::Remote;
use syncfabric::vault::{CreateOptions, NewItem, Secret, Vault};
use syncfabric_testkit::servers::{Kind, Server, PASS, USER};

use common::{Dev, PW};
const WAIT: Duration = Duration::from_secs(10);

async fn open(server: &Server, folder: &str) -> Remote {
    let base = server.scratch(folder);
    connect(&base.replacen("http://", &format!("webdav+http://{USER}@"), 1)).await
}

/// A new connection to `url`, as another process makes it.
async fn connect(url: &str) -> Remote {
    let raw = syncfabric::remote::open_with_password(url, Some(PASS))
        .await
        .unwrap();
    let (trust, _) = syncfabric::remote::probe(raw.as_ref()).await.unwrap();
    assert_eq!(trust.trust, syncfabric::remote::Trust::ServerLock);
    syncfabric::remote::wrap(raw, trust)
}

fn opts(label: &str) -> SyncOptions {
    let mut o = SyncOptions::default();
    o.lease.label = label.into();
    o.lease.acquire_timeout = WAIT;
    o.lease.poll_interval = Duration::from_millis(200);
    o
}

/// Runs a sync of `vault` and drops it as soon as its database upload starts (under
/// the server lock): a crash mid-commit.
async fn crash_mid_commit(vault: &mut Vault, storage: &Remote, state: &StateDir) {
    let started = Arc::new(tokio::sync::Notify::new());
    let tell = started.clone();
    let mut o = opts("laptop");
    o.progress = Some(ProgressHook::new(move |u: &Update<'_>| {
        if u.transfer.direction == Direction::Upload
            && u.transfer.label == "database"
            && u.phase == Phase::Started
        {
            tell.notify_one();
        }
    }));
    tokio::select! {
        r = sync_vault(vault, storage, state, &o) => panic!("the sync ended before the crash: {r:?}"),
        _ = started.notified() => {}
    }
}

fn titles(v: &Vault) -> Vec<String> {
    let mut t: Vec<String> = v
        .items()
        .unwrap()
        .into_iter()
        .filter(|i| i.is_live())
        .map(|i| i.title.clone())
        .collect();
    t.sort();
    t
}

fn crashed_holder(kind: Kind) {
    let Some(server) = Server::start(kind) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let storage = open(&server, "crash").await;
        let tmp = tempfile::tempdir().unwrap();
        let create = CreateOptions {
            kdf_iter: 1000,
            ..Default::default()
        };
        let mut a = Vault::create(tmp.path().join("a"), &Secret::new(PW), &create).unwrap();
        a.add_item(NewItem::login("Bank", "me", Secret::new("b1"), ""))
            .unwrap();
        let sa = tmp.path().join("sa");
        let laptop = opts("laptop");
        sync_vault(&mut a, &storage, &StateDir::open(&sa).unwrap(), &laptop)
            .await
            .unwrap();
        let uuid = a.meta().vault_uuid().unwrap().to_string();
        let dir = RemotePath::parse(&uuid).unwrap();
        let sb = StateDir::open(tmp.path().join("sb")).unwrap();
        let mut b = restore_from_remote(
            &storage,
            &uuid,
            &tmp.path().join("b"),
            &sb,
            &Secret::new(PW),
            None,
        )
        .await
        .unwrap();

        // The laptop dies while committing "Mail": the server keeps its lock.
        a.add_item(NewItem::login("Mail", "me", Secret::new("m1"), ""))
            .unwrap();
        crash_mid_commit(&mut a, &storage, &StateDir::open(&sa).unwrap()).await;
        let held = storage.dir_locks(&dir).await.unwrap();
        assert_eq!(held.len(), 1, "the dead run's lock is there: {held:?}");

        // Another device is told who holds the lock and until when.
        b.add_item(NewItem::login("Shop", "me", Secret::new("s1"), ""))
            .unwrap();
        let e = sync_vault(&mut b, &storage, &sb, &opts("phone"))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("is held by device \"laptop\""), "{e}");
        assert!(e.contains("GMT at the latest"), "{e}");

        // The laptop's next sync proceeds at once: its own stale lock is released.
        // (The dead run's upload may or may not have landed: either way the sync
        // completes.)
        sync_vault(&mut a, &storage, &StateDir::open(&sa).unwrap(), &laptop)
            .await
            .unwrap();
        assert!(storage.dir_locks(&dir).await.unwrap().is_empty());
        sync_vault(&mut b, &storage, &sb, &opts("phone"))
            .await
            .unwrap();
        sync_vault(&mut a, &storage, &StateDir::open(&sa).unwrap(), &laptop)
            .await
            .unwrap();
        assert_eq!(titles(&b), vec!["Bank", "Mail", "Shop"]);
        assert_eq!(titles(&a), titles(&b));
    });
}

#[test]
fn a_crashed_holder_on_sabredav_is_named_and_its_device_goes_on() {
    crashed_holder(Kind::Sabre);
}

#[test]
fn a_crashed_holder_on_apache_is_named_and_its_device_goes_on() {
    crashed_holder(Kind::Apache);
}

/// `syncfabric remote unlock NAME` from another device, after a crash mid-commit:
/// refused without confirmation; with `--yes` it breaks the lock where the server shows
/// its token (Apache), and that device's next sync commits at once. Where the server
/// hides tokens (SabreDAV) it says so and changes nothing.
fn unlock_by_hand(kind: Kind) {
    let Some(server) = Server::start(kind) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let base = server.scratch("unlock");
    let url = base.replacen("http://", &format!("webdav+http://{USER}@"), 1);
    let storage = rt.block_on(open(&server, "unlock"));
    let create = CreateOptions {
        kdf_iter: 1000,
        ..Default::default()
    };
    let mut a = Vault::create(tmp.path().join("a"), &Secret::new(PW), &create).unwrap();
    let sa = tmp.path().join("sa");
    rt.block_on(sync_vault(
        &mut a,
        &storage,
        &StateDir::open(&sa).unwrap(),
        &opts("laptop"),
    ))
    .unwrap();
    let phone = Dev::new(tmp.path(), "phone");
    let with_pw = |args: &[&str]| {
        let mut c = phone.cmd(args);
        c.env("SYNCFABRIC_REMOTE_PASSWORD", PASS);
        c.output().unwrap()
    };
    let out = with_pw(&["restore", &url]);
    assert!(out.status.success(), "{out:?}");
    a.add_item(NewItem::login("Mail", "me", Secret::new("m1"), ""))
        .unwrap();
    rt.block_on(crash_mid_commit(
        &mut a,
        &storage,
        &StateDir::open(&sa).unwrap(),
    ));

    let out = with_pw(&["remote", "unlock", "origin"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("locked by device \"laptop\""), "{err}");
    assert!(
        err.contains("cut off") && err.contains("merged at its next sync"),
        "{err}"
    );
    assert!(err.contains("not confirmed"), "{err}");

    let out = with_pw(&["remote", "unlock", "origin", "--yes"]);
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    if kind == Kind::Sabre {
        assert!(!out.status.success(), "{so}{se}");
        assert!(se.contains("does not show this lock's token"), "{se}");
        return;
    }
    assert!(out.status.success(), "{so}{se}");
    assert!(so.contains("lock broken"), "{so}");
    phone.run(&["item", "add", "--title", "Shop"]);
    let out = with_pw(&["sync"]);
    assert!(out.status.success(), "{out:?}");
    assert!(phone.titles().contains(&"Shop".to_string()));
}

#[test]
fn remote_unlock_breaks_a_crashed_holders_lock_on_apache() {
    unlock_by_hand(Kind::Apache);
}

#[test]
fn remote_unlock_on_sabredav_says_it_cannot_see_the_token() {
    unlock_by_hand(Kind::Sabre);
}

/// The answer to the laptop's `LOCK` is lost (here: the run dies mid-commit and the
/// token it recorded in its state folder is gone, which leaves the server and the
/// device in the same place). Where the server shows the token (Apache), the laptop's
/// next sync releases the lock and commits. Where it does not (SabreDAV, 1800 s
/// whatever is asked), nobody can release it: the sync fails at once, saying the lock
/// is this device's own and until when, instead of waiting out its lock wait; the
/// edit stays in the local vault.
fn lost_lock_answer(kind: Kind) {
    let Some(server) = Server::start(kind) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let base = server.scratch("lost");
        let url = base.replacen("http://", &format!("webdav+http://{USER}@"), 1);
        let storage = connect(&url).await;
        let tmp = tempfile::tempdir().unwrap();
        let create = CreateOptions {
            kdf_iter: 1000,
            ..Default::default()
        };
        let mut a = Vault::create(tmp.path().join("a"), &Secret::new(PW), &create).unwrap();
        let sa = tmp.path().join("sa");
        sync_vault(
            &mut a,
            &storage,
            &StateDir::open(&sa).unwrap(),
            &opts("laptop"),
        )
        .await
        .unwrap();
        a.add_item(NewItem::login("Mail", "me", Secret::new("m1"), ""))
            .unwrap();
        crash_mid_commit(&mut a, &storage, &StateDir::open(&sa).unwrap()).await;
        std::fs::remove_file(sa.join("server-lock")).unwrap();
        // The dropped upload may still have landed (it had started): another edit,
        // so that the next sync must commit, under the lock, whatever the timing.
        a.add_item(NewItem::login("Later", "me", Secret::new("l1"), ""))
            .unwrap();

        // The laptop starts again: a new process, which knows no token.
        let storage = connect(&url).await;
        // A wait far longer than the test would sit through (a sync that does not
        // fail at once hangs here), and shorter than the 1800 s SabreDAV keeps it.
        let mut patient = opts("laptop");
        patient.lease.acquire_timeout = Duration::from_secs(900);
        let r = sync_vault(&mut a, &storage, &StateDir::open(&sa).unwrap(), &patient).await;
        if kind == Kind::Sabre {
            let e = r.unwrap_err().to_string();
            assert!(e.contains("this device itself"), "{e}");
            assert!(e.contains("device \"laptop\""), "{e}");
            assert!(e.contains("GMT at the latest"), "{e}");
            assert!(titles(&a).contains(&"Mail".to_string()));
            assert!(titles(&a).contains(&"Later".to_string()));
        } else {
            r.unwrap();
            let uuid = a.meta().vault_uuid().unwrap().to_string();
            let dir = RemotePath::parse(&uuid).unwrap();
            assert!(storage.dir_locks(&dir).await.unwrap().is_empty());
        }
    });
}

#[test]
fn a_lost_lock_answer_on_sabredav_fails_at_once_naming_this_device() {
    lost_lock_answer(Kind::Sabre);
}

#[test]
fn a_lost_lock_answer_on_apache_is_released_by_its_device() {
    lost_lock_answer(Kind::Apache);
}
