//! A 100 MB attachment through a resumable upload cut twice: it arrives whole, and the
//! uploading process's memory stays bounded (one chunk at a time, not the file).
//!
//! The fake keeps every file in memory, so the client runs in a process of its own:
//! this test binary started again on the ignored test `upload_process`, which prints
//! its peak resident memory (`VmHWM` of `/proc/self/status`) when done.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use syncfabric_core::auth::{SecretToken, StaticBearer};
use syncfabric_core::{Body, Precondition, RemotePath, Storage};
use syncfabric_gdrive::{GdriveConfig, GdriveStorage};
use syncfabric_testkit::gdrive_fake::{GdriveFake, GdriveFakeConfig};

mod common;

const MIB: u64 = 1 << 20;
const SIZE: u64 = 100 * MIB;
/// The child's job: `<fake URL> <token> <file>`.
const JOB: &str = "SYNCFABRIC_GDRIVE_UPLOAD_JOB";

/// The file's bytes: a pattern no compression or repetition shortcut could fake.
fn block(k: u64) -> Vec<u8> {
    (0..MIB)
        .map(|i| {
            let x = (k * MIB + i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (x >> 56) as u8
        })
        .collect()
}

fn write_file(path: &Path) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for k in 0..SIZE / MIB {
        f.write_all(&block(k)).unwrap();
    }
    f.flush().unwrap();
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

#[test]
fn a_100_mb_upload_cut_twice_arrives_whole_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("attachment.bin");
    write_file(&file);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt
        .block_on(GdriveFake::start(GdriveFakeConfig::default()))
        .unwrap();
    // The first upload chunk and one later are cut mid-body.
    fake.cut_next_chunks(2);
    let job = format!("{} {} {}", fake.url(), fake.token(), file.display());
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["upload_process", "--exact", "--ignored", "--nocapture"])
        .env(JOB, job)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peak: u64 = said
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kib="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no figure from the child: {said}"));
    let st = fake.stats();
    assert_eq!(st.cut_chunks, 2, "{st:?}");
    let got = fake.file("Apps/Enpass/attachment.bin").expect("uploaded");
    assert_eq!(got.len() as u64, SIZE);
    for (k, chunk) in got.chunks(MIB as usize).enumerate() {
        assert!(chunk == block(k as u64).as_slice(), "MiB {k} differs");
    }
    println!(
        "100 MiB uploaded in {} chunks, 2 cut, {} status queries; uploader's peak RSS {} MiB",
        st.chunks,
        st.status_queries,
        peak / 1024
    );
    // Holding the file would take 100 MiB; a chunk is 8 MiB.
    assert!(peak < 50 * 1024, "peak RSS {peak} KiB: the file was held");
    drop(fake);
    drop(rt);
}

/// The uploading process of the test above.
#[test]
#[ignore = "a child process of a_100_mb_upload_cut_twice_arrives_whole_in_bounded_memory"]
fn upload_process() {
    let job = std::env::var(JOB).expect("started by the test");
    let mut parts = job.splitn(3, ' ');
    let (url, token, file) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut cfg =
            GdriveConfig::from_url(&format!("gdrive:/Apps/Enpass?api_url={url}")).unwrap();
        cfg.retry = common::test_retry();
        let bearer = Arc::new(StaticBearer::new(SecretToken::new(token)));
        let s = GdriveStorage::new(cfg, bearer).unwrap();
        let body = Body::from_file(file).await.unwrap();
        let path = RemotePath::parse("attachment.bin").unwrap();
        s.write(&path, body, Precondition::IfAbsent).await.unwrap();
    });
    println!("peak_rss_kib={}", peak_rss_kib());
}
