//! 200 MB up and down through an upload session with two appends cut mid-body, with
//! the client's memory measured. The fake keeps bodies in memory, so it runs in a
//! process of its own (this binary started again on the ignored `fake_process`), and
//! this test is alone in its binary: the peak (`VmHWM`, reset through
//! `/proc/self/clear_refs`) is the client's.

mod common;

use futures_util::StreamExt;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use syncfabric_core::auth::{SecretToken, StaticBearer};
use syncfabric_core::{Body, Precondition, RemotePath, Storage};
use syncfabric_dropbox::hash::ContentHasher;
use syncfabric_dropbox::{DropboxConfig, DropboxStorage};
use syncfabric_testkit::dropbox_fake::{DropboxFake, DropboxFakeConfig};

const DONE_ENV: &str = "SYNCFABRIC_DROPBOX_FAKE_DONE";

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

/// The fake's process: prints `FAKE <url> <token>`, cuts the next two appends, and
/// prints its stats when the file named by `DONE_ENV` appears.
#[test]
#[ignore = "the Dropbox fake's own process for the memory test; the test starts it"]
fn fake_process() {
    let done = std::path::PathBuf::from(std::env::var(DONE_ENV).expect("started by the test"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let fake = DropboxFake::start(DropboxFakeConfig::default())
            .await
            .unwrap();
        fake.cut_next_appends(2);
        println!("FAKE {} {}", fake.url(), fake.token());
        std::io::stdout().flush().unwrap();
        while !done.exists() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let st = fake.stats();
        println!(
            "STATS {} {} {}",
            st.cut_appends,
            st.sessions_finished,
            common::has_conflicted_copies(&fake)
        );
    });
}

/// Writes `size` pseudo-random bytes to `path` a MiB at a time; their content_hash.
fn make_file(path: &std::path::Path, size: usize) -> String {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut h = ContentHasher::new();
    let (mut x, mut block, mut left) = (0x9e37_79b9_7f4a_7c15u64, vec![0u8; 1 << 20], size);
    while left > 0 {
        for b in block.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let n = left.min(block.len());
        f.write_all(&block[..n]).unwrap();
        h.update(&block[..n]);
        left -= n;
    }
    h.finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_megabytes_cut_twice_with_bounded_memory() {
    const SIZE: usize = 200 * 1000 * 1000;
    let tmp = tempfile::tempdir().unwrap();
    let done = tmp.path().join("done");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["fake_process", "--exact", "--ignored", "--nocapture"])
        .env(DONE_ENV, &done)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let fake_line = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.starts_with("FAKE "))
        .expect("the fake started");
    let mut parts = fake_line.split_whitespace().skip(1);
    let (base, token) = (parts.next().unwrap(), parts.next().unwrap());
    let url = format!(
        "dropbox:/Big?chunk_size=16777216&api_url={base}&content_url={base}&notify_url={base}"
    );
    let mut cfg = DropboxConfig::from_url(&url).unwrap();
    cfg.retry = common::test_retry();
    let bearer = Arc::new(StaticBearer::new(SecretToken::new(token)));
    let s = DropboxStorage::new(cfg, bearer).unwrap().retrying();
    let src = tmp.path().join("big.bin");
    let want = make_file(&src, SIZE);
    let path = RemotePath::parse("vault/big.bin").unwrap();

    let base_up = reset_peak();
    let body = Body::from_file(&src).await.unwrap();
    let e = s.write(&path, body, Precondition::IfAbsent).await.unwrap();
    let peak_up = status_kib("VmHWM:");
    assert_eq!(e.size, SIZE as u64);

    let base_down = reset_peak();
    let mut d = s.read(&path).await.unwrap();
    let (mut h, mut n) = (ContentHasher::new(), 0usize);
    while let Some(c) = d.stream.next().await {
        let c = c.unwrap();
        n += c.len();
        h.update(&c);
    }
    let peak_down = status_kib("VmHWM:");
    assert_eq!(
        (n, h.finish()),
        (SIZE, want),
        "the stored file differs from the source"
    );

    std::fs::write(&done, b"").unwrap();
    let stats = lines
        .map(|l| l.unwrap())
        .find(|l| l.starts_with("STATS "))
        .expect("the fake's stats");
    let _ = child.wait();
    assert_eq!(
        stats, "STATS 2 1 false",
        "cut appends, sessions finished, conflicted copies"
    );
    let up_mib = peak_up.saturating_sub(base_up) / 1024;
    let down_mib = peak_down.saturating_sub(base_down) / 1024;
    eprintln!("200 MB, 16 MiB appends, 2 cut: peak RSS above baseline: upload {up_mib} MiB, download {down_mib} MiB");
    // The whole file would be 191 MiB; one append 16 MiB.
    assert!(up_mib < 64, "upload peak grew by {up_mib} MiB");
    assert!(down_mib < 48, "download peak grew by {down_mib} MiB");
}
