//! Two clients (separate connections) racing `PUT If-Match` on one file, round after
//! round: exactly one wins each round (the other gets 412) and the file holds the
//! winner's bytes. And GETs running while large PUTs replace a file only ever see one
//! whole version, never part of one.

mod common;

use common::TestServer;
use reqwest::StatusCode;

async fn etag_of(c: &reqwest::Client, s: &TestServer, url: &str) -> String {
    let r = c
        .head(url)
        .basic_auth("a", Some(s.pass()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.headers()["etag"].to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_match_race_has_exactly_one_winner_per_round() {
    let s = TestServer::start().await;
    let (a, b) = (s.client(), s.client());
    let url = format!("{}race.bin", s.url());
    let r = a
        .put(&url)
        .basic_auth("a", Some(s.pass()))
        .body("start")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    const ROUNDS: usize = 60;
    for round in 0..ROUNDS {
        let tag = etag_of(&a, &s, &url).await;
        // Same size on purpose: the tag must still change.
        let put = |c: &reqwest::Client, who: &str| {
            c.put(&url)
                .basic_auth(who, Some(s.pass()))
                .header("if-match", &tag)
                .body(format!("round {round:03} by {who}"))
                .send()
        };
        let (ra, rb) = tokio::join!(put(&a, "a"), put(&b, "b"));
        let (sa, sb) = (ra.unwrap().status(), rb.unwrap().status());
        let wins = [sa, sb].iter().filter(|s| s.is_success()).count();
        let lost = [sa, sb]
            .iter()
            .filter(|s| **s == StatusCode::PRECONDITION_FAILED)
            .count();
        assert_eq!((wins, lost), (1, 1), "round {round}: {sa} / {sb}");
        let winner = if sa.is_success() { "a" } else { "b" };
        let body = a
            .get(&url)
            .basic_auth("a", Some(s.pass()))
            .send()
            .await
            .unwrap();
        assert_eq!(
            body.text().await.unwrap(),
            format!("round {round:03} by {winner}")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_during_a_put_never_sees_part_of_a_file() {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
    use std::sync::Arc;
    const SIZE: usize = 16 * 1024 * 1024;
    let s = TestServer::start().await;
    let url = format!("{}vault.enpassdb", s.url());
    let c = s.client();
    let r = c
        .put(&url)
        .basic_auth("a", Some(s.pass()))
        .body(vec![b'A'; SIZE])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    // The writer keeps replacing the file until the reader has done enough reads that
    // began while a PUT was in flight; the reader reads until the writer stops.
    let (done, putting, overlapped) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU32::new(0)),
    );
    let reader = {
        let (c, url, pass) = (s.client(), url.clone(), s.pass().to_string());
        let (done, putting, overlapped) = (done.clone(), putting.clone(), overlapped.clone());
        tokio::spawn(async move {
            let mut reads = 0u32;
            while !done.load(SeqCst) {
                let during = putting.load(SeqCst);
                let r = c
                    .get(&url)
                    .basic_auth("a", Some(&pass))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                let b = r.bytes().await.unwrap();
                assert_eq!(b.len(), SIZE, "a partial file was served");
                assert!(
                    b.iter().all(|&x| x == b[0]),
                    "a mix of two versions was served"
                );
                reads += 1;
                overlapped.fetch_add(u32::from(during), SeqCst);
            }
            reads
        })
    };
    let mut puts = 0u8;
    while overlapped.load(SeqCst) < 5 && puts < 200 {
        puts += 1;
        putting.store(true, SeqCst);
        let r = c
            .put(&url)
            .basic_auth("a", Some(s.pass()))
            .body(vec![b'A' + puts % 26; SIZE])
            .send()
            .await
            .unwrap();
        putting.store(false, SeqCst);
        assert!(r.status().is_success());
    }
    done.store(true, SeqCst);
    let reads = reader.await.unwrap();
    let during = overlapped.load(SeqCst);
    println!("{puts} PUTs; {reads} whole reads, {during} of them begun while a PUT ran");
    assert!(during >= 5, "the reads did not overlap the writes");
    let last = c
        .get(&url)
        .basic_auth("a", Some(s.pass()))
        .send()
        .await
        .unwrap();
    assert!(last
        .bytes()
        .await
        .unwrap()
        .iter()
        .all(|&x| x == b'A' + puts % 26));
}

/// The served folder is also written by the serving device's folder remote (another
/// process in real life; the folder provider here): a WebDAV client's `PUT If-Match`
/// and the folder provider's `IfMatch` write racing on one file have exactly one
/// winner per round, because the server commits under the folder provider's lock too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_remote_and_a_webdav_client_racing_one_file_have_one_winner() {
    use syncfabric_core::{Body, Error, Precondition, RemotePath, Storage};
    let s = TestServer::start().await;
    let folder = syncfabric_folder::FolderStorage::new(&s.vault).unwrap();
    let c = s.client();
    let url = format!("{}shared.bin", s.url());
    let path = RemotePath::parse("shared.bin").unwrap();
    // Large enough that the folder provider's hash of the current file, under its
    // lock, takes a while: the window in which a server ignoring that lock overtakes it.
    // Distinct per round and writer: the folder's versions are content hashes, and equal
    // bytes would rightly pass its condition.
    let body = |round: usize, who: u8| {
        let mut v = vec![who; 4 << 20];
        v[..8].copy_from_slice(&(round as u64).to_le_bytes());
        v
    };
    folder
        .write(&path, Body::from(body(0, 0)), Precondition::IfAbsent)
        .await
        .unwrap();
    const ROUNDS: usize = 30;
    for round in 1..=ROUNDS {
        let tag = etag_of(&c, &s, &url).await;
        let version = folder.stat(&path).await.unwrap().unwrap().version.unwrap();
        let put = c
            .put(&url)
            .basic_auth("a", Some(s.pass()))
            .header("if-match", &tag)
            .body(body(round, 1))
            .send();
        let write = folder.write(
            &path,
            Body::from(body(round, 2)),
            Precondition::IfMatch(version),
        );
        let (rp, rw) = tokio::join!(put, write);
        let dav_won = rp.unwrap().status().is_success();
        let folder_won = match rw {
            Ok(_) => true,
            Err(Error::PreconditionFailed { .. }) => false,
            Err(e) => panic!("round {round}: {e}"),
        };
        assert!(
            dav_won != folder_won,
            "round {round}: dav {dav_won}, folder {folder_won}"
        );
        let want = body(round, if dav_won { 1 } else { 2 });
        assert!(
            std::fs::read(s.vault.join("shared.bin")).unwrap() == want,
            "round {round}"
        );
    }
}
