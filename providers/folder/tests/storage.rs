//! The folder provider's own behaviour tests: the storage contract, preconditions,
//! versions under outside writers, hidden internal files, placeholders, conflict copies.

use bytes::Bytes;
use futures_util::StreamExt;
use std::time::Duration;
use syncfabric_core::{Body, EntryKind, Error, Precondition, RemotePath, Storage, Version};
use syncfabric_folder::{
    conflict_copies, not_downloaded, ConflictStyle, FolderOptions, FolderStorage, TEMP_PREFIX,
};

fn p(s: &str) -> RemotePath {
    RemotePath::parse(s).unwrap()
}

fn body(b: &[u8]) -> Body {
    Body::Bytes(Bytes::copy_from_slice(b))
}

fn store() -> (tempfile::TempDir, FolderStorage) {
    let dir = tempfile::tempdir().unwrap();
    let s = FolderStorage::new(dir.path()).unwrap();
    (dir, s)
}

async fn read_all(s: &FolderStorage, path: &RemotePath) -> (Option<Version>, Vec<u8>) {
    let d = s.read(path).await.unwrap();
    let mut out = Vec::new();
    let mut stream = d.stream;
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    (d.version, out)
}

#[tokio::test]
async fn new_rejects_missing_root_and_files() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        FolderStorage::new(dir.path().join("nope")),
        Err(Error::NotFound { .. })
    ));
    std::fs::write(dir.path().join("f"), b"x").unwrap();
    assert!(matches!(
        FolderStorage::new(dir.path().join("f")),
        Err(Error::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn write_stat_read_list_delete() {
    let (_d, s) = store();
    let path = p("vaults/primary/vault.json");
    assert_eq!(s.stat(&path).await.unwrap(), None);
    let e = s
        .write(&path, body(b"{\"a\":1}"), Precondition::None)
        .await
        .unwrap();
    assert_eq!(e.kind, EntryKind::File);
    assert_eq!(e.size, 7);
    let v = e.version.clone().unwrap();
    assert!(v.as_str().starts_with("sha256:"));
    let st = s.stat(&path).await.unwrap().unwrap();
    assert_eq!(st.version, Some(v.clone()));
    assert_eq!(st.size, 7);
    let (rv, bytes) = read_all(&s, &path).await;
    assert_eq!(rv, Some(v));
    assert_eq!(bytes, b"{\"a\":1}");

    let dir = s.stat(&p("vaults/primary")).await.unwrap().unwrap();
    assert_eq!(dir.kind, EntryKind::Dir);
    assert_eq!(dir.version, None);
    let root = s.stat(&RemotePath::root()).await.unwrap().unwrap();
    assert_eq!(root.kind, EntryKind::Dir);

    let l = s.list(&p("vaults")).await.unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].path, p("vaults/primary"));
    assert_eq!(l[0].kind, EntryKind::Dir);
    let l = s.list(&p("vaults/primary")).await.unwrap();
    assert_eq!(
        l.iter().map(|e| e.path.clone()).collect::<Vec<_>>(),
        vec![path.clone()]
    );
    assert!(matches!(
        s.list(&p("nope")).await,
        Err(Error::NotFound { .. })
    ));
    assert!(
        matches!(s.list(&path).await, Err(Error::NotFound { .. })),
        "a file is not a folder"
    );

    s.delete(&path, Precondition::None).await.unwrap();
    assert_eq!(s.stat(&path).await.unwrap(), None);
    assert!(matches!(s.read(&path).await, Err(Error::NotFound { .. })));
    // Idempotent delete.
    s.delete(&path, Precondition::None).await.unwrap();
    s.delete(&p("no/such/folder/file"), Precondition::None)
        .await
        .unwrap();
}

#[tokio::test]
async fn versions_change_on_every_content_change_and_match_content() {
    let (_d, s) = store();
    let path = p("f.bin");
    let v1 = s
        .write(&path, body(b"aaaa"), Precondition::None)
        .await
        .unwrap()
        .version
        .unwrap();
    let v2 = s
        .write(&path, body(b"bbbb"), Precondition::None)
        .await
        .unwrap()
        .version
        .unwrap();
    assert_ne!(v1, v2, "same size, same second, different bytes");
    let v3 = s
        .write(&path, body(b"aaaa"), Precondition::None)
        .await
        .unwrap()
        .version
        .unwrap();
    assert_eq!(v1, v3, "a content token: equal bytes, equal version");
    // Another handle (separate cache) sees the same versions.
    let other = FolderStorage::new(s.root()).unwrap();
    assert_eq!(other.stat(&path).await.unwrap().unwrap().version, Some(v3));
}

#[tokio::test]
async fn same_size_rewrite_by_another_program_gives_a_new_version() {
    let (d, s) = store();
    let path = p("vault.enpassdb");
    let v1 = s
        .write(&path, body(b"0123456789"), Precondition::None)
        .await
        .unwrap()
        .version
        .unwrap();
    // Warm any cache.
    assert_eq!(
        s.stat(&path).await.unwrap().unwrap().version.as_ref(),
        Some(&v1)
    );
    for i in 0..20u8 {
        // In place (same inode), same size, immediately: what a careless program does.
        let content = [b'a' + i; 10];
        std::fs::write(d.path().join("vault.enpassdb"), content).unwrap();
        let v = s.stat(&path).await.unwrap().unwrap().version.unwrap();
        assert_ne!(v, v1);
        let (rv, bytes) = read_all(&s, &path).await;
        assert_eq!(bytes, content);
        assert_eq!(rv.as_ref(), Some(&v));
        // An IfMatch with the stale version must fail.
        let r = s
            .write(&path, body(b"x"), Precondition::IfMatch(v1.clone()))
            .await;
        assert!(matches!(r, Err(Error::PreconditionFailed { .. })), "{r:?}");
    }
}

#[tokio::test]
async fn preconditions_on_write() {
    let (_d, s) = store();
    let path = p("a/b.txt");
    let wrong = Version::new("sha256:0000");
    // IfMatch on a missing file fails.
    assert!(matches!(
        s.write(&path, body(b"1"), Precondition::IfMatch(wrong.clone()))
            .await,
        Err(Error::PreconditionFailed { .. })
    ));
    let v1 = s
        .write(&path, body(b"1"), Precondition::IfAbsent)
        .await
        .unwrap()
        .version
        .unwrap();
    assert!(matches!(
        s.write(&path, body(b"2"), Precondition::IfAbsent).await,
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        s.write(&path, body(b"2"), Precondition::IfMatch(wrong))
            .await,
        Err(Error::PreconditionFailed { .. })
    ));
    let v2 = s
        .write(&path, body(b"2"), Precondition::IfMatch(v1.clone()))
        .await
        .unwrap()
        .version
        .unwrap();
    assert!(matches!(
        s.write(&path, body(b"3"), Precondition::IfMatch(v1)).await,
        Err(Error::PreconditionFailed { .. })
    ));
    assert_eq!(read_all(&s, &path).await.1, b"2");
    assert_eq!(s.stat(&path).await.unwrap().unwrap().version, Some(v2));
    // Failed writes leave no temp file behind.
    let names: Vec<_> = std::fs::read_dir(s.local_path(&p("a")))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.to_string_lossy().starts_with(TEMP_PREFIX)),
        "{names:?}"
    );
}

#[tokio::test]
async fn preconditions_on_delete() {
    let (_d, s) = store();
    let path = p("x");
    let v1 = s
        .write(&path, body(b"1"), Precondition::None)
        .await
        .unwrap()
        .version
        .unwrap();
    let v2 = s
        .write(&path, body(b"2"), Precondition::None)
        .await
        .unwrap()
        .version
        .unwrap();
    assert!(matches!(
        s.delete(&path, Precondition::IfMatch(v1.clone())).await,
        Err(Error::PreconditionFailed { .. })
    ));
    assert!(s.stat(&path).await.unwrap().is_some());
    s.delete(&path, Precondition::IfMatch(v2.clone()))
        .await
        .unwrap();
    assert!(s.stat(&path).await.unwrap().is_none());
    assert!(matches!(
        s.delete(&path, Precondition::IfMatch(v2)).await,
        Err(Error::PreconditionFailed { .. })
    ));
    s.delete(&path, Precondition::IfAbsent).await.unwrap();
    s.write(&path, body(b"3"), Precondition::None)
        .await
        .unwrap();
    assert!(matches!(
        s.delete(&path, Precondition::IfAbsent).await,
        Err(Error::AlreadyExists { .. })
    ));
}

#[tokio::test]
async fn folders_root_and_reserved_names() {
    let (_d, s) = store();
    s.create_dir(&p("a/b/c")).await.unwrap();
    s.create_dir(&p("a/b/c")).await.unwrap();
    assert_eq!(
        s.stat(&p("a/b/c")).await.unwrap().unwrap().kind,
        EntryKind::Dir
    );
    // Writing over a folder, or under a file, is refused.
    assert!(matches!(
        s.write(&p("a/b"), body(b"x"), Precondition::None).await,
        Err(Error::InvalidInput { .. })
    ));
    s.write(&p("f"), body(b"x"), Precondition::None)
        .await
        .unwrap();
    assert!(s
        .write(&p("f/g"), body(b"x"), Precondition::None)
        .await
        .is_err());
    assert_eq!(s.stat(&p("f/g")).await.unwrap(), None);
    assert!(s.create_dir(&p("f")).await.is_err());
    // Root and reserved names.
    assert!(matches!(
        s.write(&RemotePath::root(), body(b"x"), Precondition::None)
            .await,
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        s.delete(&RemotePath::root(), Precondition::None).await,
        Err(Error::InvalidInput { .. })
    ));
    for bad in [
        ".syncfabric-lock",
        ".syncfabric-tmp-1234",
        "d/.syncfabric-lock/y",
    ] {
        assert!(
            matches!(
                s.write(&p(bad), body(b"x"), Precondition::None).await,
                Err(Error::InvalidInput { .. })
            ),
            "{bad}"
        );
    }
    // Other dot-names, like the core honesty probe's, are ordinary files.
    s.write(
        &p(".syncfabric-probe-1"),
        body(b"x"),
        Precondition::IfAbsent,
    )
    .await
    .unwrap();
    assert!(s
        .list(&RemotePath::root())
        .await
        .unwrap()
        .iter()
        .any(|e| e.path == p(".syncfabric-probe-1")));
    s.delete(&p(".syncfabric-probe-1"), Precondition::None)
        .await
        .unwrap();
    // Reading a folder is refused; deleting an empty folder works, a full one does not.
    assert!(matches!(
        s.read(&p("a")).await,
        Err(Error::InvalidInput { .. })
    ));
    assert!(s.delete(&p("a/b"), Precondition::None).await.is_err());
    s.delete(&p("a/b/c"), Precondition::None).await.unwrap();
    assert_eq!(s.stat(&p("a/b/c")).await.unwrap(), None);
}

#[tokio::test]
async fn internal_files_never_show() {
    let (d, s) = store();
    s.write(&p("v/a"), body(b"1"), Precondition::None)
        .await
        .unwrap();
    // The lock file now exists; add a stray temp file as a killed writer would leave.
    std::fs::write(
        d.path()
            .join("v")
            .join(format!("{TEMP_PREFIX}0011223344556677")),
        b"half",
    )
    .unwrap();
    assert!(d.path().join("v/.syncfabric-lock").exists());
    let names: Vec<_> = s
        .list(&p("v"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(names, vec![p("v/a")]);
    assert_eq!(s.stat(&p("v/.syncfabric-lock")).await.unwrap(), None);
    assert!(matches!(
        s.read(&p("v/.syncfabric-lock")).await,
        Err(Error::NotFound { .. })
    ));
    // Not old enough for the default sweep; an explicit sweep removes it.
    assert_eq!(
        s.sweep_temp_files(&p("v"), Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.sweep_temp_files(&p("v"), Duration::ZERO).await.unwrap(),
        1
    );
    assert_eq!(
        std::fs::read_dir(d.path().join("v")).unwrap().count(),
        2,
        "a and the lock file"
    );
}

#[tokio::test]
async fn large_files_stream_in_chunks_from_a_file_body() {
    let (_d, s) = store();
    let src = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let data: Vec<u8> = (0..(3 * 1024 * 1024 + 17))
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&src, &data).unwrap();
    let b = Body::from_file(src.to_path_buf()).await.unwrap();
    let e = s
        .write(&p("big.bin"), b, Precondition::IfAbsent)
        .await
        .unwrap();
    assert_eq!(e.size, data.len() as u64);
    let d2 = s.read(&p("big.bin")).await.unwrap();
    assert_eq!(d2.size, Some(data.len() as u64));
    let mut chunks = 0;
    let mut got = Vec::new();
    let mut st = d2.stream;
    while let Some(c) = st.next().await {
        let c = c.unwrap();
        assert!(c.len() <= syncfabric_folder::CHUNK_SIZE);
        chunks += 1;
        got.extend_from_slice(&c);
    }
    assert!(chunks > 1);
    assert_eq!(got, data);
    assert_eq!(d2.version, e.version);
}

#[tokio::test]
async fn an_open_read_keeps_its_bytes_while_the_file_is_replaced() {
    let (_d, s) = store();
    let path = p("v");
    let big = vec![1u8; 2 * syncfabric_folder::CHUNK_SIZE];
    let v1 = s
        .write(&path, Body::from(big.clone()), Precondition::None)
        .await
        .unwrap()
        .version;
    let d = s.read(&path).await.unwrap();
    s.write(&path, body(b"new"), Precondition::None)
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut st = d.stream;
    while let Some(c) = st.next().await {
        got.extend_from_slice(&c.unwrap());
    }
    assert_eq!(got, big);
    assert_eq!(d.version, v1);
}

#[tokio::test]
async fn concurrent_tasks_compare_and_swap_without_lost_updates() {
    let (d, s0) = store();
    let path = p("counter");
    s0.write(&path, body(b"0"), Precondition::IfAbsent)
        .await
        .unwrap();
    let tasks = 6;
    let per = 15;
    let mut handles = Vec::new();
    for _ in 0..tasks {
        // Separate storages (separate caches, separate lock handles).
        let s = FolderStorage::new(d.path()).unwrap();
        let path = path.clone();
        handles.push(tokio::spawn(async move {
            let mut conflicts = 0u32;
            for _ in 0..per {
                loop {
                    let (v, bytes) = read_all(&s, &path).await;
                    let n: u64 = String::from_utf8(bytes).unwrap().parse().unwrap();
                    match s
                        .write(
                            &path,
                            body((n + 1).to_string().as_bytes()),
                            Precondition::IfMatch(v.unwrap()),
                        )
                        .await
                    {
                        Ok(_) => break,
                        Err(Error::PreconditionFailed { .. }) => conflicts += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            conflicts
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let (_, bytes) = read_all(&s0, &path).await;
    assert_eq!(String::from_utf8(bytes).unwrap(), (tasks * per).to_string());
}

#[tokio::test]
async fn concurrent_if_absent_has_exactly_one_winner() {
    let (d, _s) = store();
    let mut handles = Vec::new();
    for i in 0..8 {
        let s = FolderStorage::new(d.path()).unwrap();
        handles.push(tokio::spawn(async move {
            s.write(
                &p("lock"),
                body(format!("{i}").as_bytes()),
                Precondition::IfAbsent,
            )
            .await
            .map(|_| i)
        }));
    }
    let mut winners = Vec::new();
    for h in handles {
        match h.await.unwrap() {
            Ok(i) => winners.push(i),
            Err(Error::AlreadyExists { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(
        std::fs::read_to_string(d.path().join("lock")).unwrap(),
        winners[0].to_string()
    );
}

#[tokio::test]
async fn if_absent_is_truthful_against_a_file_made_by_another_program() {
    let (d, s) = store();
    std::fs::write(d.path().join("made-elsewhere"), b"theirs").unwrap();
    assert!(matches!(
        s.write(&p("made-elsewhere"), body(b"mine"), Precondition::IfAbsent)
            .await,
        Err(Error::AlreadyExists { .. })
    ));
    assert_eq!(
        std::fs::read(d.path().join("made-elsewhere")).unwrap(),
        b"theirs"
    );
}

#[tokio::test]
async fn icloud_placeholders_are_not_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let drive = dir.path().join("com~apple~CloudDocs");
    std::fs::create_dir(&drive).unwrap();
    let s = FolderStorage::icloud_at(&drive, "Enpass/vaults").unwrap();
    assert_eq!(
        s.root(),
        std::fs::canonicalize(drive.join("Enpass/vaults")).unwrap()
    );
    std::fs::create_dir(s.root().join("primary")).unwrap();
    std::fs::write(
        s.root().join("primary/.vault.enpassdb.icloud"),
        b"bplist00...",
    )
    .unwrap();
    std::fs::write(s.root().join("primary/vault.json"), b"{}").unwrap();
    let path = p("primary/vault.enpassdb");

    let e = s.stat(&path).await.unwrap_err();
    let nd = not_downloaded(&e).expect("a NotDownloaded error");
    assert_eq!(nd.path, "primary/vault.enpassdb");
    assert!(e.is_retryable());
    assert!(not_downloaded(&s.read(&path).await.unwrap_err()).is_some());
    // Never overwritten or created over as if it were missing.
    assert!(not_downloaded(
        &s.write(&path, body(b"x"), Precondition::IfAbsent)
            .await
            .unwrap_err()
    )
    .is_some());
    assert!(not_downloaded(
        &s.write(&path, body(b"x"), Precondition::None)
            .await
            .unwrap_err()
    )
    .is_some());
    assert!(not_downloaded(&s.delete(&path, Precondition::None).await.unwrap_err()).is_some());
    assert!(!s.root().join("primary/vault.enpassdb").exists());
    // Listing shows real files only; placeholders() shows what is waiting.
    let names: Vec<_> = s
        .list(&p("primary"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(names, vec![p("primary/vault.json")]);
    assert_eq!(
        s.placeholders(&p("primary")).await.unwrap(),
        vec![path.clone()]
    );
    // Once downloaded (the file appears), it is a normal file.
    std::fs::write(s.root().join("primary/vault.enpassdb"), b"db").unwrap();
    std::fs::remove_file(s.root().join("primary/.vault.enpassdb.icloud")).unwrap();
    assert_eq!(s.stat(&path).await.unwrap().unwrap().size, 2);
    assert!(s.placeholders(&p("primary")).await.unwrap().is_empty());
}

#[tokio::test]
async fn placeholders_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let s = FolderStorage::with_options(
        dir.path(),
        FolderOptions {
            icloud_placeholders: false,
            ..Default::default()
        },
    )
    .unwrap();
    std::fs::write(dir.path().join(".a.icloud"), b"x").unwrap();
    assert_eq!(s.stat(&p("a")).await.unwrap(), None);
    assert_eq!(s.list(&RemotePath::root()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn conflict_copies_are_found_and_never_followed() {
    let (d, s) = store();
    let v = d.path().join("v");
    std::fs::create_dir(&v).unwrap();
    for name in [
        "vault (conflicted copy).enpassdb",
        "vault (John's conflicted copy 2024-01-02).enpassdb",
        "vault 2.enpassdb",
        "vault-DESKTOP-ABC.enpassdb",
        "vault.sync-conflict-20240101-120000-ABCDEF.enpassdb",
        "vault.json",
    ] {
        std::fs::write(v.join(name), name.as_bytes()).unwrap();
    }
    let path = p("v/vault.enpassdb");
    // The real file is missing: nothing is followed in its place.
    assert_eq!(s.stat(&path).await.unwrap(), None);
    assert!(matches!(s.read(&path).await, Err(Error::NotFound { .. })));
    assert!(matches!(
        s.write(
            &path,
            body(b"x"),
            Precondition::IfMatch(Version::new("sha256:00"))
        )
        .await,
        Err(Error::PreconditionFailed { .. })
    ));
    let copies = s.conflict_copies(&path).await.unwrap();
    let styles: Vec<_> = copies.iter().map(|c| c.style).collect();
    assert_eq!(copies.len(), 5, "{copies:?}");
    assert!(styles.contains(&ConflictStyle::Syncthing));
    assert!(styles.contains(&ConflictStyle::ComputerName));
    assert!(styles.contains(&ConflictStyle::Numbered));
    // Same through the free function on a listing.
    let listing = s.list(&p("v")).await.unwrap();
    assert_eq!(conflict_copies(&listing, &path), copies);
    // Writing the real file creates it and leaves the copies alone.
    s.write(&path, body(b"real"), Precondition::IfAbsent)
        .await
        .unwrap();
    assert_eq!(read_all(&s, &path).await.1, b"real");
    assert_eq!(s.conflict_copies(&path).await.unwrap().len(), 5);
}

#[tokio::test]
async fn capabilities_and_description() {
    let (_d, s) = store();
    let c = s.capabilities();
    assert!(c.has_truthful_cas());
    assert!(c.conditional_delete);
    assert!(c.read_after_write);
    assert!(s.describe().starts_with("folder /"));
    let polled = FolderStorage::with_options(
        s.root(),
        FolderOptions::network_share(Duration::from_secs(5)),
    )
    .unwrap();
    assert!(polled.describe().contains("polled"));
}

#[tokio::test]
async fn a_read_torn_by_an_in_place_rewrite_is_an_error_not_silent() {
    let (d, s) = store();
    let path = p("f");
    let first = vec![1u8; 2 * syncfabric_folder::CHUNK_SIZE + 10];
    s.write(&path, Body::from(first), Precondition::None)
        .await
        .unwrap();
    let dl = s.read(&path).await.unwrap();
    let mut st = dl.stream;
    let chunk = st.next().await.unwrap().unwrap();
    assert_eq!(chunk.len(), syncfabric_folder::CHUNK_SIZE);
    // Another program rewrites the same inode in place, with another length.
    std::fs::write(
        d.path().join("f"),
        vec![2u8; 3 * syncfabric_folder::CHUNK_SIZE],
    )
    .unwrap();
    let mut last = None;
    while let Some(item) = st.next().await {
        last = Some(item);
        if last.as_ref().is_some_and(|r| r.is_err()) {
            break;
        }
    }
    let err = last
        .expect("stream yielded nothing more")
        .expect_err("a torn read must end in an error");
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn a_folder_emptied_of_files_can_be_deleted() {
    let (d, s) = store();
    s.write(&p("e/x"), body(b"1"), Precondition::None)
        .await
        .unwrap();
    assert!(matches!(
        s.delete(&p("e"), Precondition::None).await,
        Err(Error::InvalidInput { .. })
    ));
    s.delete(&p("e/x"), Precondition::None).await.unwrap();
    // Only the provider's own lock file is left: the folder counts as empty.
    assert!(s.list(&p("e")).await.unwrap().is_empty());
    s.delete(&p("e"), Precondition::None).await.unwrap();
    assert!(!d.path().join("e").exists());
    assert_eq!(s.stat(&p("e")).await.unwrap(), None);
    // And writing into it again recreates it.
    s.write(&p("e/x"), body(b"2"), Precondition::IfAbsent)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_swap_stays_exclusive_while_the_folder_is_deleted_and_recreated() {
    // Incrementers compare-and-swap "d/c" (creating it with IfAbsent when missing); a
    // harvester deletes it with IfMatch, banks its value, and deletes the emptied
    // folder (with its lock file). No increment may be lost.
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let (d, _s) = store();
    let done = Arc::new(AtomicU64::new(0));
    let banked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let c = p("d/c");
    let mut incs = Vec::new();
    for _ in 0..3 {
        let s = FolderStorage::new(d.path()).unwrap();
        let (done, c) = (done.clone(), c.clone());
        incs.push(tokio::spawn(async move {
            for _ in 0..60 {
                loop {
                    let r = match s.read(&c).await {
                        Ok(dl) => {
                            let mut bytes = Vec::new();
                            let mut st = dl.stream;
                            let mut ok = true;
                            while let Some(ch) = st.next().await {
                                match ch {
                                    Ok(ch) => bytes.extend_from_slice(&ch),
                                    Err(_) => ok = false,
                                }
                            }
                            if !ok {
                                continue;
                            }
                            let n: u64 = String::from_utf8(bytes).unwrap().parse().unwrap();
                            s.write(
                                &c,
                                body((n + 1).to_string().as_bytes()),
                                Precondition::IfMatch(dl.version.unwrap()),
                            )
                            .await
                        }
                        Err(Error::NotFound { .. }) => {
                            s.write(&c, body(b"1"), Precondition::IfAbsent).await
                        }
                        Err(e) => panic!("{e}"),
                    };
                    match r {
                        Ok(_) => {
                            done.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        Err(Error::PreconditionFailed { .. } | Error::AlreadyExists { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }));
    }
    let harvester = {
        let s = FolderStorage::new(d.path()).unwrap();
        let (banked, stop, c) = (banked.clone(), stop.clone(), c.clone());
        tokio::spawn(async move {
            let mut folder_deletes = 0;
            while !stop.load(Ordering::SeqCst) {
                if let Ok(dl) = s.read(&c).await {
                    let mut bytes = Vec::new();
                    let mut st = dl.stream;
                    while let Some(Ok(ch)) = st.next().await {
                        bytes.extend_from_slice(&ch);
                    }
                    if let Ok(n) = String::from_utf8(bytes).unwrap_or_default().parse::<u64>() {
                        if s.delete(&c, Precondition::IfMatch(dl.version.unwrap()))
                            .await
                            .is_ok()
                        {
                            banked.fetch_add(n, Ordering::SeqCst);
                        }
                    }
                }
                if s.delete(&p("d"), Precondition::None).await.is_ok() {
                    folder_deletes += 1;
                }
                tokio::task::yield_now().await;
            }
            folder_deletes
        })
    };
    for t in incs {
        t.await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let folder_deletes = harvester.await.unwrap();
    let s = FolderStorage::new(d.path()).unwrap();
    let left = match s.read(&c).await {
        Ok(dl) => {
            let mut bytes = Vec::new();
            let mut st = dl.stream;
            while let Some(ch) = st.next().await {
                bytes.extend_from_slice(&ch.unwrap());
            }
            String::from_utf8(bytes).unwrap().parse::<u64>().unwrap()
        }
        Err(_) => 0,
    };
    assert_eq!(done.load(Ordering::SeqCst), 180);
    assert_eq!(
        banked.load(Ordering::SeqCst) + left,
        180,
        "an increment was lost"
    );
    eprintln!("folder deleted and recreated {folder_deletes} times during the race");
}
