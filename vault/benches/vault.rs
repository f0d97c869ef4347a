//! Benchmarks: key derivation at 320,000 iterations; opening and listing a 10,000-item
//! vault once the key is known (issue #2 target: open + list under 100 ms).
//!
//! Run: `cargo bench -p syncfabric-vault`. Compare the KDF median with
//! `scripts/bench-kdf.sh` (the `openssl kdf` CLI) on the same machine.
//!
//! The `vault_10k` group measures, in the same run so that ratios can be quoted:
//! * `open_and_list`: [`Vault::open_with_key`] + [`Vault::items`] (the target figure);
//! * `open_cipher_check_and_list`: the same plus a full `PRAGMA cipher_integrity_check`
//!   (every page's HMAC) after opening, which is what `open` used to do;
//! * `open_only`: [`Vault::open_with_key`] alone;
//! * `raw_scan`: open + one SQL pass over every column of `item` and `itemfield` with
//!   no decoding in Rust: the floor that SQLCipher's page decryption sets;
//! * `list_only`: [`Vault::items`] on a connection already open;
//! * `snapshot`: [`Vault::snapshot`] on a connection already open.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use syncfabric_vault::{CreateOptions, NewItem, Secret, Vault, VaultKey, DEFAULT_KDF_ITER};

fn kdf(c: &mut Criterion) {
    let mut g = c.benchmark_group("kdf");
    g.sample_size(10);
    let pw = Secret::new("correct horse battery staple");
    g.bench_function("pbkdf2_sha512_320000", |b| {
        b.iter(|| VaultKey::derive(black_box(&pw), None, [7u8; 16], DEFAULT_KDF_ITER).unwrap())
    });
    g.finish();
}

/// Reads every column of `item` and `itemfield` once, touching each value's bytes.
fn raw_scan(v: &Vault) -> usize {
    let mut n = 0usize;
    for sql in ["SELECT * FROM item", "SELECT * FROM itemfield"] {
        let mut st = v.connection().prepare(sql).unwrap();
        let cols = st.column_count();
        let mut rows = st.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            for i in 0..cols {
                n += match r.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                        t.len()
                    }
                    _ => 1,
                };
            }
        }
    }
    n
}

fn open_list(c: &mut Criterion) {
    let td = tempfile::tempdir().unwrap();
    let dir = td.path().join("v");
    let mut v = Vault::create(
        &dir,
        &Secret::new("pw"),
        &CreateOptions {
            kdf_iter: 1000,
            ..Default::default()
        },
    )
    .unwrap();
    let items: Vec<NewItem> = (0..10_000)
        .map(|i| {
            NewItem::login(
                &format!("Item {i}"),
                &format!("user{i}"),
                Secret::new(format!("pw-{i}-xyz")),
                &format!("https://site{i}.example/"),
            )
        })
        .collect();
    v.add_items(items).unwrap();
    let key = v.key().clone();
    drop(v);
    let len = std::fs::metadata(dir.join("vault.enpassdb")).unwrap().len();
    eprintln!(
        "vault_10k: vault.enpassdb is {len} bytes ({} pages of 1 KiB)",
        len / 1024
    );
    let mut g = c.benchmark_group("vault_10k");
    g.sample_size(10);
    g.bench_function("open_and_list", |b| {
        b.iter(|| {
            let v = Vault::open_with_key(&dir, key.clone()).unwrap();
            let n = v.items().unwrap().len();
            assert_eq!(n, 10_000);
        })
    });
    g.bench_function("open_cipher_check_and_list", |b| {
        b.iter(|| {
            let v = Vault::open_with_key(&dir, key.clone()).unwrap();
            let bad = v
                .connection()
                .prepare("PRAGMA cipher_integrity_check")
                .unwrap()
                .query_map([], |r| r.get::<_, String>(0))
                .unwrap()
                .count();
            assert_eq!(bad, 0);
            let n = v.items().unwrap().len();
            assert_eq!(n, 10_000);
        })
    });
    g.bench_function("open_only", |b| {
        b.iter(|| black_box(Vault::open_with_key(&dir, key.clone()).unwrap()))
    });
    g.bench_function("raw_scan", |b| {
        b.iter(|| {
            let v = Vault::open_with_key(&dir, key.clone()).unwrap();
            black_box(raw_scan(&v))
        })
    });
    let v = Vault::open_with_key(&dir, key.clone()).unwrap();
    g.bench_function("list_only", |b| {
        b.iter(|| black_box(v.items().unwrap().len()))
    });
    g.bench_function("snapshot", |b| b.iter(|| black_box(v.snapshot().unwrap())));
    g.finish();
}

criterion_group!(benches, kdf, open_list);
criterion_main!(benches);
