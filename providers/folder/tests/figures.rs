//! Measurements, not checks: `cargo test -p syncfabric-folder --release --test figures
//! -- --ignored --nocapture`. Prints timings; asserts only correctness, never time.

use bytes::Bytes;
use futures_util::StreamExt;
use std::time::{Duration, Instant};
use syncfabric_core::{Body, Precondition, RemotePath, Storage};
use syncfabric_folder::FolderStorage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run by hand"]
async fn figures() {
    let dir = tempfile::tempdir().unwrap();
    let s = FolderStorage::new(dir.path()).unwrap();
    for mib in [1usize, 32] {
        let path = RemotePath::parse(&format!("f{mib}")).unwrap();
        let data = Bytes::from(vec![0x5au8; mib << 20]);
        let t = Instant::now();
        let e = s
            .write(&path, Body::Bytes(data.clone()), Precondition::IfAbsent)
            .await
            .unwrap();
        let w = t.elapsed();
        let t = Instant::now();
        let st = s.stat(&path).await.unwrap().unwrap();
        let stat_uncached = t.elapsed();
        assert_eq!(st.version, e.version);
        let t = Instant::now();
        let d = s.read(&path).await.unwrap();
        let mut n = 0;
        let mut stream = d.stream;
        while let Some(c) = stream.next().await {
            n += c.unwrap().len();
        }
        let r = t.elapsed();
        assert_eq!(n, data.len());
        println!("{mib:>3} MiB: write+fsync {w:?}, stat (hash) {stat_uncached:?}, read (hash+stream) {r:?}");
    }
    // Cached stat: the cache only trusts files whose timestamps are older than RACY_SLACK.
    tokio::time::sleep(syncfabric_folder::version::RACY_SLACK + Duration::from_millis(500)).await;
    let path = RemotePath::parse("f32").unwrap();
    s.stat(&path).await.unwrap();
    let t = Instant::now();
    for _ in 0..100 {
        s.stat(&path).await.unwrap();
    }
    println!(
        " 32 MiB: stat with a warm cache {:?} each",
        t.elapsed() / 100
    );
    // Small compare-and-swap writes, one client.
    let c = RemotePath::parse("counter").unwrap();
    let mut v = s
        .write(
            &c,
            Body::Bytes(Bytes::from_static(b"0")),
            Precondition::IfAbsent,
        )
        .await
        .unwrap()
        .version
        .unwrap();
    let t = Instant::now();
    for i in 0..200u32 {
        v = s
            .write(
                &c,
                Body::Bytes(Bytes::from(i.to_string())),
                Precondition::IfMatch(v),
            )
            .await
            .unwrap()
            .version
            .unwrap();
    }
    println!(
        "IfMatch write of a few bytes (lock, hash, rename, 2 fsyncs): {:?} each",
        t.elapsed() / 200
    );
}
