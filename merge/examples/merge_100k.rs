//! Merges two 100,000-item vault snapshots (real Enpass columns, 10 fields per item,
//! 10% of the items edited on each side, 1% on both) once, and prints the time of the
//! merge alone. For peak memory run the built binary under `/usr/bin/time -v` and read
//! "Maximum resident set size":
//!
//! ```text
//! cargo build --release -p syncfabric-merge --example merge_100k
//! /usr/bin/time -v target/release/examples/merge_100k 100000 10 owned
//! ```
//!
//! Usage: `merge_100k [items] [fields] [owned|borrowed|inputs]` — `owned` (default)
//! calls `merge_owned`, `borrowed` calls `merge`, `inputs` only builds the three
//! input snapshots (the memory the merge starts from).

#[path = "../benches/gen/mod.rs"]
mod gen;

use std::time::Instant;

use syncfabric_merge::{merge, merge_owned, MergeOutcome, Snapshot};

fn rows(s: &Snapshot) -> usize {
    s.tables.values().map(|t| t.rows.len()).sum()
}

fn main() -> Result<(), syncfabric_merge::MergeError> {
    let mut args = std::env::args().skip(1);
    let items = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let fields = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let mode = args.next().unwrap_or_else(|| "owned".into());
    let start = Instant::now();
    let (base, local, remote) = gen::scenario(items, fields);
    println!(
        "{items} items x {fields} fields: {} rows per side, inputs built in {:.2?}",
        rows(&local),
        start.elapsed()
    );
    let start = Instant::now();
    let out: MergeOutcome = match mode.as_str() {
        "inputs" => return Ok(()),
        "borrowed" => merge(Some(&base), &local, &remote)?,
        _ => merge_owned(Some(base), local, remote)?,
    };
    println!(
        "{mode}: merged in {:.2?}; {} conflicts; rows: merged {}, to_local {}, to_remote {}",
        start.elapsed(),
        out.conflicts.len(),
        rows(&out.merged),
        rows(&out.to_local),
        rows(&out.to_remote)
    );
    Ok(())
}
