//! Merges two 100,000-item vaults (real Enpass columns, 10 fields per item, 10% of the
//! items edited on each side, 1% on both) once, and prints the time of the merge. For
//! peak memory run the built binary under `/usr/bin/time -v` and read "Maximum resident
//! set size":
//!
//! ```text
//! cargo build --release -p syncfabric-merge --example merge_100k
//! /usr/bin/time -v $CARGO_TARGET_DIR/release/examples/merge_100k 100000 10 stream
//! ```
//!
//! Usage: `merge_100k [items] [fields] [stream|snapshots|inputs]`:
//! * `stream` (default): `merge_sources` over three generated [`gen::GenVault`] row
//!   sources, with `MergeOptions::default()` — the call the sync engine makes (there
//!   the sources are `ORDER BY` cursors over the vault databases); the rows are
//!   generated as they are read, so the figure is the merge's own time and memory plus
//!   the cost of producing the rows;
//! * `snapshots`: the three inputs built as in-memory `Snapshot`s first, then `merge`
//!   (which also keeps the merged content): what holding whole vaults in memory costs;
//! * `inputs`: only builds the three in-memory snapshots;
//! * `generate`: only reads the three generated sources through, no merge (the share
//!   of `stream`'s time that is producing rows).

#[path = "../benches/gen/mod.rs"]
mod gen;

use std::time::Instant;

use syncfabric_merge::{merge, merge_sources, MergeOptions, MergeOutcome, RowSource, Snapshot};

fn rows(s: &Snapshot) -> usize {
    s.tables.values().map(|t| t.rows.len()).sum()
}

fn main() -> Result<(), syncfabric_merge::MergeError> {
    let mut args = std::env::args().skip(1);
    let items = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let fields = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let mode = args.next().unwrap_or_else(|| "stream".into());
    let (out, took): (MergeOutcome, _) = match mode.as_str() {
        "inputs" | "snapshots" => {
            let start = Instant::now();
            let (base, local, remote) = gen::scenario(items, fields);
            println!(
                "{items} items x {fields} fields: {} rows per side, in-memory inputs built in {:.2?}",
                rows(&local),
                start.elapsed()
            );
            if mode == "inputs" {
                return Ok(());
            }
            let start = Instant::now();
            let out = merge(Some(&base), &local, &remote)?;
            (out, start.elapsed())
        }
        "generate" => {
            let (base, local, remote) = gen::scenario_sources(items, fields);
            let start = Instant::now();
            let mut n = 0usize;
            for src in [&base, &local, &remote] {
                for t in ["item", "itemfield"] {
                    src.scan(t, &mut |c| {
                        while c.advance().unwrap_or(false) {
                            n += 1;
                        }
                    })
                    .expect("generated rows");
                }
            }
            println!("generated {n} rows in {:.2?}", start.elapsed());
            return Ok(());
        }
        _ => {
            let (base, local, remote) = gen::scenario_sources(items, fields);
            let start = Instant::now();
            let out = merge_sources(Some(&base), &local, &remote, &MergeOptions::default())?;
            (out, start.elapsed())
        }
    };
    println!(
        "{mode}: merged in {took:.2?}; {} conflicts; rows: to_local {}, to_remote {}; live items after: {}",
        out.conflicts.len(),
        rows(&out.to_local),
        rows(&out.to_remote),
        out.live_items.merged,
    );
    Ok(())
}
