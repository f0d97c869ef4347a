//! Merges two 100,000-item vault snapshots (10 fields per item, 10% of the items
//! edited on each side, 1% on both) once, and prints the time of the merge alone.
//! Peak memory of the whole run: `/usr/bin/time -v cargo run --release -p
//! syncfabric-merge --example merge_100k` (look at "Maximum resident set size"; run
//! the built binary directly to leave cargo out).
//!
//! Usage: merge_100k [items] [fields]

#[path = "../benches/gen/mod.rs"]
mod gen;

use std::time::Instant;

fn main() -> Result<(), syncfabric_merge::MergeError> {
    let mut args = std::env::args().skip(1);
    let items = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let fields = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let start = Instant::now();
    let (base, local, remote) = gen::scenario(items, fields);
    let made = start.elapsed();
    let start = Instant::now();
    let out = syncfabric_merge::merge(Some(&base), &local, &remote)?;
    let merged = start.elapsed();
    println!(
        "{items} items x {fields} fields: inputs built in {:.2?}, merged in {:.2?}; \
         {} conflicts, {} tables to local, {} to remote",
        made,
        merged,
        out.conflicts.len(),
        out.to_local.tables.len(),
        out.to_remote.tables.len()
    );
    let rows =
        |s: &syncfabric_merge::Snapshot| s.tables.values().map(|t| t.rows.len()).sum::<usize>();
    println!(
        "rows: merged {}, to_local {}, to_remote {}",
        rows(&out.merged),
        rows(&out.to_local),
        rows(&out.to_remote)
    );
    Ok(())
}
