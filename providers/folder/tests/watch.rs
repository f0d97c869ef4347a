//! The change feed: notify (inotify) and the polling watcher, debounced.

use bytes::Bytes;
use std::collections::BTreeSet;
use std::time::Duration;
use syncfabric_core::{Body, Change, ChangeStream, Error, Precondition, RemotePath, Storage};
use syncfabric_folder::{FolderOptions, FolderStorage};

fn p(s: &str) -> RemotePath {
    RemotePath::parse(s).unwrap()
}

fn body(b: &'static [u8]) -> Body {
    Body::Bytes(Bytes::from_static(b))
}

/// Collects changes until `done` says the set seen so far is enough; fails after a
/// generous bound (never asserting how long it took).
async fn collect_until(
    feed: &mut ChangeStream,
    mut done: impl FnMut(&[Change]) -> bool,
) -> Vec<Change> {
    let mut seen = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(30), async {
        while !done(&seen) {
            match feed.next().await {
                Some(Ok(c)) => seen.push(c),
                Some(Err(e)) => panic!("feed error: {e}"),
                None => panic!("feed ended"),
            }
        }
    })
    .await;
    assert!(r.is_ok(), "expected changes never came; saw {seen:?}");
    seen
}

fn changed_paths(seen: &[Change]) -> BTreeSet<String> {
    seen.iter()
        .filter_map(|c| match c {
            Change::Changed { path, .. } => Some(path.as_str().to_string()),
            _ => None,
        })
        .collect()
}

fn removed_paths(seen: &[Change]) -> BTreeSet<String> {
    seen.iter()
        .filter_map(|c| match c {
            Change::Removed { path } => Some(path.as_str().to_string()),
            _ => None,
        })
        .collect()
}

async fn write_by_another_handle_is_reported(options: FolderOptions) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("v")).unwrap();
    let watcher = FolderStorage::with_options(dir.path(), options).unwrap();
    let other = FolderStorage::new(dir.path()).unwrap();
    let mut feed = watcher.watch(&p("v")).await.unwrap();

    let e = other
        .write(&p("v/vault.enpassdb"), body(b"one"), Precondition::IfAbsent)
        .await
        .unwrap();
    let seen = collect_until(&mut feed, |s| changed_paths(s).contains("v/vault.enpassdb")).await;
    // Internal temp/lock files are never reported.
    for c in &seen {
        if let Some(path) = c.path() {
            assert!(
                !syncfabric_folder::is_internal_name(path.file_name().unwrap()),
                "{c:?}"
            );
            assert_eq!(path.parent(), Some(p("v")), "only direct children: {c:?}");
        }
    }
    // The consumer stats to learn the version: it is the written one.
    assert_eq!(
        watcher
            .stat(&p("v/vault.enpassdb"))
            .await
            .unwrap()
            .unwrap()
            .version,
        e.version
    );

    // A change by a program that is not syncfabric (in place).
    std::fs::write(dir.path().join("v/vault.json"), b"{}").unwrap();
    collect_until(&mut feed, |s| changed_paths(s).contains("v/vault.json")).await;

    other
        .delete(&p("v/vault.enpassdb"), Precondition::None)
        .await
        .unwrap();
    collect_until(&mut feed, |s| removed_paths(s).contains("v/vault.enpassdb")).await;
}

#[tokio::test]
async fn notify_reports_writes_by_another_handle() {
    write_by_another_handle_is_reported(FolderOptions::default()).await;
}

#[tokio::test]
async fn polling_watcher_reports_writes_by_another_handle() {
    write_by_another_handle_is_reported(FolderOptions::network_share(Duration::from_millis(100)))
        .await;
}

#[tokio::test]
async fn polling_sees_a_same_size_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"aaaa").unwrap();
    let s = FolderStorage::with_options(
        dir.path(),
        FolderOptions::network_share(Duration::from_millis(100)),
    )
    .unwrap();
    let mut feed = s.watch(&RemotePath::root()).await.unwrap();
    std::fs::write(dir.path().join("f"), b"bbbb").unwrap();
    collect_until(&mut feed, |s| changed_paths(s).contains("f")).await;
}

#[tokio::test]
async fn a_burst_is_debounced_into_one_change_per_path() {
    let dir = tempfile::tempdir().unwrap();
    let s = FolderStorage::with_options(
        dir.path(),
        FolderOptions {
            debounce: Duration::from_millis(300),
            ..Default::default()
        },
    )
    .unwrap();
    let mut feed = s.watch(&RemotePath::root()).await.unwrap();
    for i in 0..20u32 {
        s.write(
            &p("x"),
            Body::Bytes(Bytes::from(i.to_string())),
            Precondition::None,
        )
        .await
        .unwrap();
    }
    let seen = collect_until(&mut feed, |s| changed_paths(s).contains("x")).await;
    // Without debouncing every write's rename would be one report (20). A burst is
    // reported once per quiet window; allow a few windows on a very loaded machine.
    let n = seen.iter().filter(|c| c.path() == Some(&p("x"))).count();
    assert!(n <= 5, "{seen:?}");
}

#[tokio::test]
async fn watching_a_missing_folder_or_a_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"x").unwrap();
    let s = FolderStorage::new(dir.path()).unwrap();
    assert!(matches!(
        s.watch(&p("missing")).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.watch(&p("f")).await,
        Err(Error::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn icloud_placeholder_arrival_reports_the_real_name() {
    let dir = tempfile::tempdir().unwrap();
    let s = FolderStorage::new(dir.path()).unwrap();
    let mut feed = s.watch(&RemotePath::root()).await.unwrap();
    std::fs::write(dir.path().join(".vault.enpassdb.icloud"), b"plist").unwrap();
    collect_until(&mut feed, |s| changed_paths(s).contains("vault.enpassdb")).await;
}

#[tokio::test]
async fn works_through_watch_or_poll() {
    let dir = tempfile::tempdir().unwrap();
    let s: std::sync::Arc<dyn Storage> =
        std::sync::Arc::new(FolderStorage::new(dir.path()).unwrap());
    let mut feed = syncfabric_core::watch::watch_or_poll(
        s.clone(),
        &RemotePath::root(),
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    s.write(&p("a"), body(b"1"), Precondition::None)
        .await
        .unwrap();
    // The poll interval is an hour: only the native feed can report this in time.
    collect_until(&mut feed, |s| changed_paths(s).contains("a")).await;
}
