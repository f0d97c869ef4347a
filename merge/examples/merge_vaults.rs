//! The sync engine's merge path on real vault files: a vault of `items` login items is
//! created (no KDF cost worth noting: 1,000 iterations), its database copied as the
//! base and as a second device, 10% of the items edited on each copy (1% on both),
//! then timed:
//! * `stream` (default): `open_snapshot_file` (verification: every page's HMAC and
//!   `integrity_check`) for the base, `Vault::rows` for both devices, `merge_sources` —
//!   exactly what `src/engine/sync.rs` runs for a sync where both sides changed;
//! * `snapshots`: the previous path, three whole snapshots (`read_snapshot_file`,
//!   `Vault::snapshot`) and `merge`.
//!
//! ```text
//! cargo build --release -p syncfabric-merge --example merge_vaults
//! /usr/bin/time -v $CARGO_TARGET_DIR/release/examples/merge_vaults 10000 stream
//! ```
//! The vaults are made under a temp dir (or `MERGE_VAULTS_DIR`, kept and reused).

use std::path::Path;
use std::time::Instant;

use syncfabric_merge::{merge, merge_sources, MergeOptions};
use syncfabric_vault::{CreateOptions, NewItem, Secret, Vault};

fn edit(v: &mut Vault, uuids: &[String], pick: impl Fn(usize) -> bool, tag: &str) {
    for (n, u) in uuids.iter().enumerate().filter(|(n, _)| pick(*n)) {
        let mut it = v.get_item(u).expect("get").expect("item");
        it.title = format!("{} ({tag})", it.title);
        if let Some(f) = it.field_mut(syncfabric_vault::field_type::PASSWORD) {
            f.value = Secret::new(format!("{tag}-{n}"));
        }
        v.update_item(&it).expect("update");
    }
}

fn make(dir: &Path, items: usize) {
    let pw = Secret::new("bench");
    let opts = CreateOptions {
        kdf_iter: 1_000,
        ..CreateOptions::default()
    };
    let t = Instant::now();
    let mut a = Vault::create(dir.join("a"), &pw, &opts).expect("create");
    let news: Vec<NewItem> = (0..items)
        .map(|n| {
            NewItem::login(
                &format!("Item {n}"),
                &format!("user{n}"),
                Secret::new(format!("pw-{n}")),
                "https://example.com",
            )
        })
        .collect();
    let uuids = a.add_items(news).expect("add");
    a.copy_database_to(dir.join("base.enpassdb")).expect("copy");
    drop(a);
    copy_dir(&dir.join("a"), &dir.join("b"));
    let mut a = Vault::open(dir.join("a"), &pw, None).expect("open a");
    let mut b = Vault::open(dir.join("b"), &pw, None).expect("open b");
    edit(&mut a, &uuids, |n| n % 10 == 0, "local");
    edit(
        &mut b,
        &uuids,
        |n| (n % 10 == 5 && n % 100 != 5) || n % 100 == 0,
        "remote",
    );
    println!("made the vaults in {:.2?}", t.elapsed());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let items: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let mode = args.next().unwrap_or_else(|| "stream".into());
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = std::env::var_os("MERGE_VAULTS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_owned());
    if !dir.join("b").exists() {
        make(&dir, items);
    }
    let pw = Secret::new("bench");
    let a = Vault::open(dir.join("a"), &pw, None).expect("open a");
    let b = Vault::open(dir.join("b"), &pw, None).expect("open b");
    let base = dir.join("base.enpassdb");
    let t = Instant::now();
    let out = if mode == "snapshots" {
        let bs = syncfabric_vault::read_snapshot_file(&base, a.key()).expect("base");
        let (ls, rs) = (a.snapshot().expect("local"), b.snapshot().expect("remote"));
        println!("read three snapshots in {:.2?}", t.elapsed());
        merge(Some(&bs), &ls, &rs).expect("merge")
    } else {
        let bs = syncfabric_vault::open_snapshot_file(&base, a.key()).expect("base");
        println!("verified and opened the base in {:.2?}", t.elapsed());
        let (ls, rs) = (a.rows().expect("local"), b.rows().expect("remote"));
        merge_sources(Some(&bs), &ls, &rs, &MergeOptions::default()).expect("merge")
    };
    let rows =
        |s: &syncfabric_vault::Snapshot| s.tables.values().map(|t| t.rows.len()).sum::<usize>();
    println!(
        "{mode}: {items} items, read + merged in {:.2?}; {} conflicts; rows: to_local {}, to_remote {}",
        t.elapsed(),
        out.conflicts.len(),
        rows(&out.to_local),
        rows(&out.to_remote)
    );
}
