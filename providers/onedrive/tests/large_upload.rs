//! 100 MB up and down through an upload session with bounded memory. One test in its
//! own binary, so nothing else runs in the process while its peak memory is measured
//! (`VmHWM`, reset through `/proc/self/clear_refs`); the fake in the same process
//! stores bodies on disk in 64 KiB steps, so the figure is the client's (plus the fake's
//! small buffers).

mod common;

use futures_util::StreamExt;
use std::io::Write;
use syncfabric_core::{Body, Precondition, RemotePath, Storage};
use syncfabric_testkit::graph_fake::{FakeConfig, GraphFake, FRAGMENT_UNIT};

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap()
}

/// Resets the peak-RSS mark; returns the current RSS in KiB.
fn reset_peak() -> u64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    status_kib("VmRSS:")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_megabytes_stream_with_bounded_memory() {
    const SIZE: u64 = 100 * 1000 * 1000;
    let fake = GraphFake::start(FakeConfig::default()).await.unwrap();
    let s = common::storage(&fake, "onedrive:/Big");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("hundred.bin");
    let mut hasher = openssl::sha::Sha256::new();
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&src).unwrap());
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut block = vec![0u8; 1 << 20];
        let mut left = SIZE as usize;
        while left > 0 {
            for b in block.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let n = left.min(block.len());
            f.write_all(&block[..n]).unwrap();
            hasher.update(&block[..n]);
            left -= n;
        }
    }
    let want = hasher.finish();
    let path = RemotePath::parse("vault/hundred.bin").unwrap();

    let base_up = reset_peak();
    let e = s
        .write(
            &path,
            Body::from_file(&src).await.unwrap(),
            Precondition::IfAbsent,
        )
        .await
        .unwrap();
    let peak_up = status_kib("VmHWM:");
    assert_eq!(e.size, SIZE);

    let st = fake.stats();
    assert_eq!((st.sessions_created, st.sessions_committed), (1, 1));
    assert_eq!(st.bad_fragment_sizes, 0);
    let frags = &st.fragments;
    assert_eq!(frags.len() as u64, SIZE.div_ceil(32 * FRAGMENT_UNIT));
    let mut next = 0;
    for (i, f) in frags.iter().enumerate() {
        assert_eq!(f.start, next);
        if i + 1 < frags.len() {
            assert_eq!(f.len, 32 * FRAGMENT_UNIT);
        }
        next += f.len;
    }
    assert_eq!(next, SIZE);

    let base_down = reset_peak();
    let mut dl = s.read(&path).await.unwrap();
    assert_eq!(dl.size, Some(SIZE));
    let mut h = openssl::sha::Sha256::new();
    let mut got = 0u64;
    while let Some(c) = dl.stream.next().await {
        let c = c.unwrap();
        got += c.len() as u64;
        h.update(&c);
    }
    let peak_down = status_kib("VmHWM:");
    assert_eq!(got, SIZE);
    assert_eq!(h.finish(), want, "the stored file differs from the source");

    let up_mib = peak_up.saturating_sub(base_up) / 1024;
    let down_mib = peak_down.saturating_sub(base_down) / 1024;
    eprintln!(
        "100 MB: {} fragments of {} bytes; peak RSS above baseline: upload {up_mib} MiB, download {down_mib} MiB; fake held at most {} body bytes in memory",
        frags.len(),
        32 * FRAGMENT_UNIT,
        st.max_body_in_memory
    );
    assert!(st.max_body_in_memory <= 64 * 1024);
    // A whole-file buffer would be 95 MiB; one fragment 10 MiB.
    assert!(up_mib < 48, "upload peak grew by {up_mib} MiB");
    assert!(down_mib < 48, "download peak grew by {down_mib} MiB");
}
