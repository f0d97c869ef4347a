//! Criterion benchmark: merge two 100,000-item vaults (real Enpass columns, 10 fields
//! per item, 10% of the items edited on each side, 1% on both) with `merge_sources` and
//! `MergeOptions::default()`, the call the sync engine makes. The sources generate their
//! rows in key order as the merge reads them (one reused buffer, as the vault's
//! `ORDER BY` cursors do), so the time is the merge plus producing 3.3 million rows.
//! Also 10,000 items, and `merge` over in-memory snapshots (which keeps the merged
//! content) for comparison.
//!
//! `cargo bench -p syncfabric-merge` (`-- 10k` for the small ones only). Peak memory and
//! a single timed merge in a fresh process: examples/merge_100k.rs.

mod gen;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use syncfabric_merge::{merge, merge_sources, MergeOptions};

fn bench(c: &mut Criterion) {
    for (name, items) in [("10k", 10_000), ("100k", 100_000)] {
        let (base, local, remote) = gen::scenario_sources(items, 10);
        let mut g = c.benchmark_group(format!("merge_{name}_x10_fields"));
        g.sample_size(10)
            .measurement_time(Duration::from_secs(if items > 50_000 { 30 } else { 10 }));
        g.bench_function("stream", |b| {
            b.iter(|| {
                merge_sources(Some(&base), &local, &remote, &MergeOptions::default())
                    .expect("merge")
            })
        });
        if items <= 10_000 {
            let (bs, ls, rs) = gen::scenario(items, 10);
            g.bench_function("snapshots", |b| {
                b.iter(|| merge(Some(&bs), &ls, &rs).expect("merge"))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
