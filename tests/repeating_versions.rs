//! Storages whose versions repeat (an ETag built from a whole-second mtime and the
//! size): the probe must see it, and two devices committing same-size databases, one
//! after the other or racing, must lose nothing. The storage is the in-memory
//! reference store behind `RepeatingVersions`, which gives every file the version of
//! its size and checks `If-Match` against that, as such a server does for writes within
//! one second. Before the commit marker, the second device's commit checked "the
//! database still has the version I merged" against that tag and replaced the first
//! device's commit: its edit was gone, with no conflict reported.
//!
//! The same rounds run against a real server whose ETags have one-second resolution:
//! WsgiDAV (inode, whole-second mtime and size), opened with the `Generic` profile an
//! unknown server gets, so that nothing but the probe's verdict protects the commits.
//! There the probe must see the versions repeat; the rounds themselves also passed with
//! the marker switched off (the lease's pauses put the commits seconds apart, and each
//! temporary upload gets a new inode), so the in-memory double is the test that fails
//! without the marker (round 1), this one the check on a real server.

use syncfabric_testkit::servers;

use std::sync::Arc;
use syncfabric::core::memory::MemoryStorage;
use syncfabric::core::Storage;
use syncfabric::engine::{restore_from_remote, sync_vault, StateDir, SyncOptions, SyncOutcome};
use syncfabric::remote::{Remote, Trust, Verdict, Writes};
use syncfabric::vault::{CreateOptions, NewItem, Secret, Vault};
use syncfabric_conformance::doubles::RepeatingVersions;

const PW: &str = "repeating versions";
const ROUNDS: usize = 25;

fn password_of(v: &Vault, title: &str) -> String {
    let item = v
        .items()
        .unwrap()
        .into_iter()
        .find(|i| i.title == title)
        .unwrap();
    item.field("password").unwrap().value.expose().to_string()
}

/// Sets `title`'s password to `value` (always the same length: the database keeps its
/// size, so its size-built version repeats).
fn set_password(v: &mut Vault, title: &str, value: &str) {
    let mut item = v
        .items()
        .unwrap()
        .into_iter()
        .find(|i| i.title == title)
        .unwrap();
    item.field_mut("password").unwrap().value = Secret::new(value);
    v.update_item(&item).unwrap();
}

async fn connected() -> (Remote, Verdict) {
    let raw: Arc<dyn Storage> = Arc::new(RepeatingVersions(MemoryStorage::new()));
    let c = syncfabric::remote::connect(raw, None).await.unwrap();
    let verdict = c.verdict();
    (c, verdict)
}

#[tokio::test]
async fn the_probe_sees_versions_that_repeat() {
    let (storage, verdict) = connected().await;
    assert_eq!(
        verdict,
        Verdict {
            trust: Trust::ServerLock,
            strong_versions: false,
            writes: Writes::Atomic,
        }
    );
    let caps = storage.storage().capabilities();
    assert!(!caps.strong_versions && !caps.has_truthful_cas() && caps.server_lock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_size_commits_from_two_devices_are_never_lost() {
    let (storage, _) = connected().await;
    same_size_rounds(storage, ROUNDS).await;
}

#[test]
fn same_size_commits_over_wsgidav_with_one_second_etags_are_never_lost() {
    use syncfabric_webdav::{Profile, Secret as DavSecret, WebDavConfig, WebDavStorage};
    let Some(server) = servers::Server::start(servers::Kind::Wsgidav) else {
        return;
    };
    let url = server.scratch("repeating");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cfg = WebDavConfig::new(url)
            .with_credentials(servers::USER, DavSecret::new(servers::PASS))
            .with_profile(Profile::Generic);
        let raw: Arc<dyn Storage> = Arc::new(WebDavStorage::connect(cfg).await.unwrap());
        let c = syncfabric::remote::connect(raw, None).await.unwrap();
        let report = c.probe().unwrap();
        assert!(!report.strong_versions, "{}", report.summary());
        assert!(!c.verdict().strong_versions);
        same_size_rounds(c, 10).await;
    });
}

/// Two devices edit one item each (same-length values: the database keeps its size)
/// and sync, `rounds` times, alternately one after the other and racing; after each
/// round both devices hold both edits.
async fn same_size_rounds(storage: Remote, rounds: usize) {
    let mut opts = SyncOptions::default();
    // A lock write answered later than `settle` after its look is refused and left to
    // expire: a settle a loaded CI machine keeps within, and a short lease.
    opts.lease.settle = std::time::Duration::from_millis(800);
    opts.lease.ttl = std::time::Duration::from_secs(15);
    opts.lease.refresh_every = std::time::Duration::from_secs(3);
    opts.lease.poll_interval = std::time::Duration::from_millis(100);
    let tmp = tempfile::tempdir().unwrap();
    let create = CreateOptions {
        kdf_iter: 1000,
        ..Default::default()
    };
    let mut a = Vault::create(tmp.path().join("a"), &Secret::new(PW), &create).unwrap();
    for t in ["A", "B"] {
        a.add_item(NewItem::login(t, "me", Secret::new(format!("{t}-000")), ""))
            .unwrap();
    }
    let sa = StateDir::open(tmp.path().join("sa")).unwrap();
    sync_vault(&mut a, &storage, &sa, &opts).await.unwrap();
    let uuid = a.meta().vault_uuid().unwrap().to_string();
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

    for round in 1..=rounds {
        let (va, vb) = (format!("A-{round:03}"), format!("B-{round:03}"));
        set_password(&mut a, "A", &va);
        set_password(&mut b, "B", &vb);
        if round % 2 == 1 {
            // One after the other: B's database has the size A's commit left.
            sync_vault(&mut a, &storage, &sa, &opts).await.unwrap();
            sync_vault(&mut b, &storage, &sb, &opts).await.unwrap();
        } else {
            // Racing.
            let (ra, rb) = futures_util::future::join(
                sync_vault(&mut a, &storage, &sa, &opts),
                sync_vault(&mut b, &storage, &sb, &opts),
            )
            .await;
            ra.unwrap();
            rb.unwrap();
        }
        sync_vault(&mut a, &storage, &sa, &opts).await.unwrap();
        sync_vault(&mut b, &storage, &sb, &opts).await.unwrap();
        for (name, v) in [("a", &a), ("b", &b)] {
            assert_eq!(
                (password_of(v, "A"), password_of(v, "B")),
                (va.clone(), vb.clone()),
                "round {round}: device {name} lost an edit"
            );
        }
    }
    let last = sync_vault(&mut a, &storage, &sa, &opts).await.unwrap();
    assert_eq!(last.outcome, SyncOutcome::UpToDate);
}
