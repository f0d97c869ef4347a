//! Criterion benchmark: merge two 100,000-item snapshots (real Enpass columns, 10
//! fields per item, 10% of the items edited on each side, 1% on both), with `merge`
//! (inputs borrowed, merged rows copied; the time includes dropping the outcome) and
//! `merge_owned` (inputs consumed, rows moved; the time includes freeing the inputs,
//! not dropping the outcome). Also 10,000 items for a quick run.
//!
//! `cargo bench -p syncfabric-merge` (`-- 10k` for the small one only). Peak memory and
//! a single timed merge in a fresh process: examples/merge_100k.rs.

mod gen;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use syncfabric_merge::{merge, merge_owned};

fn bench(c: &mut Criterion) {
    for (name, items) in [("10k", 10_000), ("100k", 100_000)] {
        let (base, local, remote) = gen::scenario(items, 10);
        let mut g = c.benchmark_group(format!("merge_{name}_x10_fields"));
        g.sample_size(10)
            .measurement_time(Duration::from_secs(if items > 50_000 { 40 } else { 10 }));
        g.bench_function("borrowed", |b| {
            b.iter(|| merge(Some(&base), &local, &remote).expect("merge"))
        });
        g.bench_function("owned", |b| {
            b.iter_batched(
                || (base.clone(), local.clone(), remote.clone()),
                |(bs, l, r)| merge_owned(Some(bs), l, r).expect("merge"),
                BatchSize::PerIteration,
            )
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
