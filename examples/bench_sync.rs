//! End-to-end timing of one sync after a one-item edit of a 10,000-item vault,
//! excluding key derivation (the vaults are opened before the clock starts).
//!
//! ```sh
//! cargo run --release --example bench_sync                 # through a local folder
//! SYNCFABRIC_REMOTE_PASSWORD=pw cargo run --release --example bench_sync -- \
//!     webdav+http://user@127.0.0.1:8080/dav/bench          # through WebDAV
//! ```
//! Prints the median of several rounds for the pushing device and the pulling device.

use std::sync::Arc;
use std::time::Instant;
use syncfabric::core::Storage;
use syncfabric::engine::{restore_from_remote, sync_vault, CountingStorage, StateDir, SyncOptions};
use syncfabric::vault::{CreateOptions, NewItem, Secret, Vault};

const ITEMS: usize = 10_000;
const ROUNDS: usize = 7;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SYNCFABRIC_LOG=debug shows the time of each step of a sync.
    if let Ok(f) = tracing_subscriber::EnvFilter::try_from_env("SYNCFABRIC_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(f)
            .with_writer(std::io::stderr)
            .init();
    }
    let tmp = tempfile::tempdir()?;
    let url = std::env::args().nth(1);
    let raw: Arc<dyn Storage> = match &url {
        Some(u) => {
            let pw = std::env::var("SYNCFABRIC_REMOTE_PASSWORD").ok();
            syncfabric::remote::open_with_password(u, pw.as_deref()).await?
        }
        None => {
            std::fs::create_dir_all(tmp.path().join("remote"))?;
            syncfabric::remote::open(&format!("folder://{}", tmp.path().join("remote").display()))
                .await?
        }
    };
    let (verdict, _) = syncfabric::remote::probe(raw.as_ref()).await?;
    let counting = CountingStorage::new(raw);
    let counters = counting.counters();
    let storage = syncfabric::remote::wrap(Arc::new(counting), verdict);
    let pw = Secret::new("bench password");
    let mut a = Vault::create(
        tmp.path().join("a"),
        &pw,
        &CreateOptions {
            kdf_iter: 1000,
            ..Default::default()
        },
    )?;
    let items: Vec<NewItem> = (0..ITEMS)
        .map(|i| {
            NewItem::login(
                &format!("item {i}"),
                &format!("user{i}"),
                Secret::new(format!("pw-{i}")),
                "https://example.com",
            )
        })
        .collect();
    a.add_items(items)?;
    let sa = StateDir::open(tmp.path().join("sa"))?;
    let opts = SyncOptions::default();
    sync_vault(&mut a, &storage, &sa, &opts).await?;
    let uuid = a.meta().vault_uuid().unwrap_or_default().to_string();
    let sb = StateDir::open(tmp.path().join("sb"))?;
    let mut b = restore_from_remote(&storage, &uuid, &tmp.path().join("b"), &sb, &pw, None).await?;
    let db_size = std::fs::metadata(a.db_path())?.len();

    let (mut push, mut pull, mut idle) = (Vec::new(), Vec::new(), Vec::new());
    let all = a.items()?;
    for round in 0..ROUNDS {
        let mut it = all[round * 97 % all.len()].clone();
        it.title = format!("edited {round}");
        a.update_item(&it)?;
        let t = Instant::now();
        sync_vault(&mut a, &storage, &sa, &opts).await?;
        push.push(t.elapsed().as_secs_f64());
        counters.reset();
        let t = Instant::now();
        sync_vault(&mut b, &storage, &sb, &opts).await?;
        pull.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        sync_vault(&mut b, &storage, &sb, &opts).await?;
        idle.push(t.elapsed().as_secs_f64());
    }
    println!("remote: {}", url.as_deref().unwrap_or("local folder"));
    println!(
        "vault: {ITEMS} items, database {:.1} MB",
        db_size as f64 / 1e6
    );
    println!(
        "push after one edit (median of {ROUNDS}): {:.3} s",
        median(push)
    );
    println!(
        "pull of that edit   (median of {ROUNDS}): {:.3} s",
        median(pull)
    );
    println!(
        "no-change sync      (median of {ROUNDS}): {:.4} s",
        median(idle)
    );
    println!(
        "last pull + no-change sync: {} requests, {:.1} MB read",
        counters.requests(),
        counters
            .bytes_read
            .load(std::sync::atomic::Ordering::SeqCst) as f64
            / 1e6
    );
    Ok(())
}
