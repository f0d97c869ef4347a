//! The folder provider inside a folder kept by a desktop sync client (the
//! `desktop_double`): late delivery, replace-by-rename, conflict copies.

use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use syncfabric_core::{Body, Change, Error, Precondition, RemotePath, Storage, Version};
use syncfabric_folder::desktop_double::{CopyNaming, DesktopDouble};
use syncfabric_folder::FolderStorage;

fn p(s: &str) -> RemotePath {
    RemotePath::parse(s).unwrap()
}

fn body(b: &[u8]) -> Body {
    Body::Bytes(Bytes::copy_from_slice(b))
}

async fn read_all(s: &FolderStorage, path: &RemotePath) -> (Option<Version>, Vec<u8>) {
    let d = s.read(path).await.unwrap();
    let mut out = Vec::new();
    let mut st = d.stream;
    while let Some(c) = st.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    (d.version, out)
}

fn setup(
    delay: Duration,
    naming: CopyNaming,
) -> (tempfile::TempDir, Arc<DesktopDouble>, FolderStorage) {
    let dir = tempfile::tempdir().unwrap();
    let double = Arc::new(DesktopDouble::new(dir.path(), delay, naming).unwrap());
    let s = FolderStorage::new(double.replica()).unwrap();
    (dir, double, s)
}

/// Waits (bounded) until `cond` holds, running nothing itself.
async fn eventually<F: std::future::Future<Output = bool>>(mut cond: impl FnMut() -> F) {
    for _ in 0..600 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition never held");
}

#[tokio::test]
async fn a_late_delivery_is_seen_eventually_with_a_new_version() {
    let (_d, double, s) = setup(Duration::from_millis(300), CopyNaming::Dropbox);
    let path = p("v/vault.enpassdb");
    let v1 = s
        .write(&path, body(b"local one"), Precondition::IfAbsent)
        .await
        .unwrap()
        .version
        .unwrap();
    double.sync_once().unwrap();
    assert_eq!(
        double.cloud_content("v/vault.enpassdb").unwrap(),
        b"local one"
    );

    // Another device writes; not delivered yet.
    double.remote_write("v/vault.enpassdb", b"remote two");
    double.sync_once().unwrap();
    assert_eq!(
        double.pending_deliveries(),
        1,
        "the delay has not passed yet in any sane run"
    );
    // Meanwhile the provider still sees its own version, truthfully.
    assert_eq!(
        s.stat(&path).await.unwrap().unwrap().version.as_ref(),
        Some(&v1)
    );

    let runner = double.spawn(Duration::from_millis(20));
    let s2 = s.clone();
    let path2 = path.clone();
    let v1c = v1.clone();
    eventually(move || {
        let s = s2.clone();
        let path = path2.clone();
        let v1 = v1c.clone();
        async move { s.stat(&path).await.unwrap().unwrap().version.as_ref() != Some(&v1) }
    })
    .await;
    drop(runner);
    let (v2, bytes) = read_all(&s, &path).await;
    assert_eq!(bytes, b"remote two");
    assert_ne!(v2.as_ref(), Some(&v1));
    // A compare-and-swap against the version from before the delivery fails.
    assert!(matches!(
        s.write(&path, body(b"stale"), Precondition::IfMatch(v1))
            .await,
        Err(Error::PreconditionFailed { .. })
    ));
    // And one against the delivered version succeeds and is uploaded.
    s.write(
        &path,
        body(b"local three"),
        Precondition::IfMatch(v2.unwrap()),
    )
    .await
    .unwrap();
    double.sync_once().unwrap();
    assert_eq!(
        double.cloud_content("v/vault.enpassdb").unwrap(),
        b"local three"
    );
}

#[tokio::test]
async fn the_change_feed_reports_a_delivery_by_rename() {
    let (_d, double, s) = setup(Duration::ZERO, CopyNaming::ICloud);
    s.create_dir(&p("v")).await.unwrap();
    let mut feed = s.watch(&p("v")).await.unwrap();
    double.remote_write("v/vault.json", b"{\"v\":1}");
    double.sync_once().unwrap();
    let got = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match feed.next().await {
                Some(Ok(Change::Changed { path, .. })) if path == p("v/vault.json") => return,
                Some(Ok(_)) => continue,
                other => panic!("{other:?}"),
            }
        }
    })
    .await;
    assert!(got.is_ok(), "delivery never reported");
    assert_eq!(read_all(&s, &p("v/vault.json")).await.1, b"{\"v\":1}");
}

#[tokio::test]
async fn an_open_read_survives_a_delivery() {
    let (_d, double, s) = setup(Duration::ZERO, CopyNaming::Dropbox);
    let big = vec![7u8; 3 * syncfabric_folder::CHUNK_SIZE];
    let path = p("big");
    let v1 = s
        .write(&path, Body::from(big.clone()), Precondition::None)
        .await
        .unwrap()
        .version;
    double.sync_once().unwrap();
    let d = s.read(&path).await.unwrap();
    double.remote_write("big", b"small now");
    double.sync_once().unwrap();
    let mut got = Vec::new();
    let mut st = d.stream;
    while let Some(c) = st.next().await {
        got.extend_from_slice(&c.unwrap());
    }
    assert_eq!(
        got, big,
        "replace-by-rename: the open handle reads one whole version"
    );
    assert_eq!(d.version, v1);
    assert_eq!(read_all(&s, &path).await.1, b"small now");
}

async fn conflict_copy_is_made_and_never_followed(naming: CopyNaming) {
    let (_d, double, s) = setup(Duration::ZERO, naming);
    let path = p("v/vault.enpassdb");
    let base = s
        .write(&path, body(b"base"), Precondition::IfAbsent)
        .await
        .unwrap()
        .version
        .unwrap();
    double.sync_once().unwrap();
    // Both sides change before the client syncs.
    let mine = s
        .write(&path, body(b"mine"), Precondition::IfMatch(base))
        .await
        .unwrap()
        .version
        .unwrap();
    double.remote_write("v/vault.enpassdb", b"theirs");
    let report = double.sync_once().unwrap();
    assert_eq!(report.conflict_copies.len(), 1, "{report:?}");

    // The provider reads the real name — the cloud's version — never the copy.
    let (v, bytes) = read_all(&s, &path).await;
    assert_eq!(bytes, b"theirs");
    assert_ne!(v.as_ref(), Some(&mine), "the version changed under us");
    assert!(matches!(
        s.write(&path, body(b"x"), Precondition::IfMatch(mine.clone()))
            .await,
        Err(Error::PreconditionFailed { .. })
    ));
    // The copy is found, with our lost write in it.
    let copies = s.conflict_copies(&path).await.unwrap();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(
        copies[0].entry.path.as_str(),
        format!(
            "v/{}",
            report.conflict_copies[0].rsplit('/').next().unwrap()
        )
    );
    assert_eq!(copies[0].entry.version.as_ref(), Some(&mine));
    assert_eq!(read_all(&s, &copies[0].entry.path).await.1, b"mine");
    // Listing shows both, and nothing internal.
    let names: Vec<_> = s
        .list(&p("v"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[tokio::test]
async fn conflict_copies_dropbox() {
    conflict_copy_is_made_and_never_followed(CopyNaming::Dropbox).await;
}

#[tokio::test]
async fn conflict_copies_icloud() {
    conflict_copy_is_made_and_never_followed(CopyNaming::ICloud).await;
}

#[tokio::test]
async fn conflict_copies_onedrive() {
    conflict_copy_is_made_and_never_followed(CopyNaming::OneDrive).await;
}

#[tokio::test]
async fn conflict_copies_syncthing() {
    conflict_copy_is_made_and_never_followed(CopyNaming::Syncthing).await;
}

#[tokio::test]
async fn reads_see_whole_versions_while_the_client_delivers() {
    // The client keeps replacing the file (by rename) with uniform buffers of a new
    // byte each time; every read must see one whole buffer, never a mix.
    let (_d, double, s) = setup(Duration::ZERO, CopyNaming::Dropbox);
    let path = p("v/vault.enpassdb");
    let size = 2 * syncfabric_folder::CHUNK_SIZE + 5;
    double.remote_write("v/vault.enpassdb", &vec![0u8; size]);
    double.sync_once().unwrap();
    let runner = double.spawn(Duration::from_millis(1));
    let mut distinct = std::collections::BTreeSet::new();
    for round in 1..=60u8 {
        double.remote_write("v/vault.enpassdb", &vec![round; size]);
        let (v, bytes) = read_all(&s, &path).await;
        assert_eq!(bytes.len(), size);
        assert!(
            bytes.iter().all(|b| *b == bytes[0]),
            "a torn read in round {round}"
        );
        // The version the read reported is the version of exactly those bytes.
        let d = tempfile::tempdir().unwrap();
        let check = FolderStorage::new(d.path()).unwrap();
        let e = check
            .write(&p("x"), Body::from(bytes.clone()), Precondition::None)
            .await
            .unwrap();
        assert_eq!(e.version, v);
        distinct.insert(bytes[0]);
    }
    drop(runner);
    assert!(
        distinct.len() > 1,
        "the client delivered nothing during the test"
    );
}
