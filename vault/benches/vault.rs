//! Benchmarks: key derivation at 320,000 iterations; opening (with full verification)
//! and listing a 10,000-item vault once the key is known.
//!
//! Run: `cargo bench -p syncfabric-vault`. Compare the KDF median with
//! `scripts/bench-kdf.sh` (the `openssl kdf` CLI) on the same machine.

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
    let mut g = c.benchmark_group("vault_10k");
    g.sample_size(10);
    g.bench_function("open_verify_and_list", |b| {
        b.iter(|| {
            let v = Vault::open_with_key(&dir, key.clone()).unwrap();
            let n = v.items().unwrap().len();
            assert_eq!(n, 10_000);
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
