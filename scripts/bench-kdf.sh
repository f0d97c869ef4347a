#!/usr/bin/env bash
# Times PBKDF2-HMAC-SHA512 at 320,000 iterations with the `openssl kdf` CLI, the
# reference for the vault crate's key derivation (target: within 1.1x of this).
# Prints each run and the median in seconds. Usage: scripts/bench-kdf.sh [runs]
set -euo pipefail
runs="${1:-7}"
command -v openssl >/dev/null || { echo "openssl CLI missing (apt-get install -y openssl)" >&2; exit 1; }
times=()
for _ in $(seq "$runs"); do
  start=$(date +%s.%N)
  openssl kdf -keylen 32 -kdfopt digest:SHA512 -kdfopt pass:correct-horse-battery-staple \
    -kdfopt hexsalt:07070707070707070707070707070707 -kdfopt iter:320000 PBKDF2 >/dev/null
  end=$(date +%s.%N)
  t=$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')
  times+=("$t")
  printf 'run: %.4f s\n' "$t"
done
median=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}')
printf 'openssl kdf PBKDF2-HMAC-SHA512 320000: median %.4f s over %d runs\n' "$median" "$runs"
