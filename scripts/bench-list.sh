#!/usr/bin/env bash
# Listing speed (not a test): `item list` on a 10,000-item vault, key derivation
# excluded, against the floor of the sqlcipher CLI reading the listing columns of the
# same file with the raw key, in the same run. See examples/bench_list.rs.
#   scripts/bench-list.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v sqlcipher >/dev/null || { echo "needs the sqlcipher CLI (apt-get install sqlcipher)"; exit 1; }
cargo build -q --release --bin syncfabric --example bench_list
target_dir="${CARGO_TARGET_DIR:-target}"
SYNCFABRIC_BIN="$target_dir/release/syncfabric" "$target_dir/release/examples/bench_list"
