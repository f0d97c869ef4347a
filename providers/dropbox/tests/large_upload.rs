//! 200 MB through an upload session (16 MiB appends) with two appends cut mid-body and
//! one append answer lost: the file on the fake is whole (its content_hash is the
//! source's), and a download brings back the same bytes. Memory is measured in
//! `large_upload_memory.rs`, with the fake (which keeps bodies in memory) in a process
//! of its own.

mod common;

use futures_util::StreamExt;
use std::io::Write;
use syncfabric_core::{Body, Precondition, RemotePath, Storage};
use syncfabric_testkit::dropbox_fake::{content_hash, DropboxFake, DropboxFakeConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_megabytes_survive_two_cuts_and_a_lost_answer() {
    const SIZE: usize = 200 * 1000 * 1000;
    let fake = DropboxFake::start(DropboxFakeConfig::default())
        .await
        .unwrap();
    let s = common::raw(&fake, "dropbox:/Big?chunk_size=16777216").retrying();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("big.bin");
    let mut data = Vec::with_capacity(SIZE);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    while data.len() < SIZE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(SIZE);
    std::fs::File::create(&src)
        .unwrap()
        .write_all(&data)
        .unwrap();
    let want = content_hash(&data);
    drop(data);

    fake.cut_next_appends(2);
    let path = RemotePath::parse("vault/big.bin").unwrap();
    let body = Body::from_file(&src).await.unwrap();
    let first = s
        .write(&path, body.clone(), Precondition::IfAbsent)
        .await
        .unwrap();
    assert_eq!(first.size, SIZE as u64);
    let st = fake.stats();
    assert_eq!((st.cut_appends, st.sessions_finished), (2, 1), "{st:?}");
    assert_eq!(
        content_hash(&fake.file("/Big/vault/big.bin").unwrap()),
        want
    );

    // Again, replacing it by rev, with an append answer lost on the way.
    fake.drop_next_append_answer();
    let second = s
        .write(
            &path,
            body,
            Precondition::IfMatch(first.version.clone().unwrap()),
        )
        .await
        .unwrap();
    // Identical bytes with the right rev: Dropbox keeps the file (and its rev).
    assert_eq!(second.version, first.version);
    assert_eq!(fake.stats().incorrect_offsets, 1);

    let mut d = s.read(&path).await.unwrap();
    let mut h = syncfabric_dropbox::hash::ContentHasher::new();
    let mut n = 0usize;
    while let Some(c) = d.stream.next().await {
        let c = c.unwrap();
        n += c.len();
        h.update(&c);
    }
    assert_eq!((n, h.finish()), (SIZE, want));
    common::assert_no_conflicted_copies(&fake);
}
