//! Upload or download one file through the WebDAV provider (used by
//! `scripts/bench-webdav.sh`; also a minimal example of the API).
//!
//! ```text
//! WEBDAV_PASS=secret cargo run --release -p syncfabric-webdav --example transfer -- \
//!     upload   http://127.0.0.1:8080/dav/ alice ./big.bin remote/big.bin
//! WEBDAV_PASS=secret cargo run --release -p syncfabric-webdav --example transfer -- \
//!     download http://127.0.0.1:8080/dav/ alice remote/big.bin ./copy.bin
//! ```
//! Prints the bytes moved, the seconds taken and MB/s.

use std::time::Instant;
use syncfabric_core::{Body, Precondition, RemotePath, Storage};
use syncfabric_webdav::{Secret, WebDavConfig, WebDavStorage};
use tokio::io::AsyncWriteExt;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: transfer upload|download URL USER SRC DST   (password in WEBDAV_PASS)");
        std::process::exit(2);
    }
    let password = Secret::new(std::env::var("WEBDAV_PASS").unwrap_or_default());
    let cfg = WebDavConfig::new(&args[2]).with_credentials(&args[3], password);
    let dav = WebDavStorage::connect(cfg).await?;
    let start = Instant::now();
    let bytes = match args[1].as_str() {
        "upload" => {
            let body = Body::from_file(&args[4]).await?;
            let e = dav
                .write(&RemotePath::parse(&args[5])?, body, Precondition::None)
                .await?;
            e.size
        }
        "download" => {
            let mut d = dav.read(&RemotePath::parse(&args[4])?).await?;
            let mut out = tokio::io::BufWriter::with_capacity(
                256 * 1024,
                tokio::fs::File::create(&args[5]).await?,
            );
            let mut n = 0u64;
            while let Some(chunk) = futures_util::StreamExt::next(&mut d.stream).await {
                let chunk = chunk?;
                n += chunk.len() as u64;
                out.write_all(&chunk).await?;
            }
            out.flush().await?;
            n
        }
        other => return Err(format!("unknown command {other}").into()),
    };
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} {bytes} bytes in {secs:.3} s = {:.1} MB/s",
        args[1],
        bytes as f64 / secs / 1e6
    );
    Ok(())
}
