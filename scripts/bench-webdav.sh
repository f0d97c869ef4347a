#!/usr/bin/env bash
# Upload and download of a large file (default 500 MB) to a local Apache mod_dav server,
# through syncfabric-webdav (examples/transfer.rs) and through `rclone copy`, in the same
# run. Prints every run, the median time of each client, the ratio of the medians
# (rclone time / our time, target >= 1.0) and our peak memory (/usr/bin/time -v, target
# < 64 MB).
#
# Fairness: runs are interleaved and the order alternates each round (ours first, then
# rclone first, ...), so a drift in the machine's load hits both alike; every timed run
# writes a fresh file (the target is removed first, outside the time) and starts after a
# `sync`, so no run pays for the write-back of the previous one's 500 MB. Both times
# include process start, connecting and what each client does after the transfer.
# The load average is printed before and after: on 2 cores with builds running beside
# it the figures move by 2x; compare ratios from the same run only.
#
#   scripts/bench-webdav.sh            # 500 MB, 5 rounds
#   SIZE_MB=100 RUNS=5 scripts/bench-webdav.sh
#   MODE=sync scripts/bench-webdav.sh  # instead: sync after one edit of a 10,000-item
#                                      # vault through this server (examples/bench_sync.rs)
#
# Needs: apache2, rclone, /usr/bin/time (package `time`), cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-500}
RUNS=${RUNS:-5}
USER_NAME=bench
PASS=bench-pass-123
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}

cargo build -q --release -p syncfabric-webdav --example transfer
BIN="$CARGO_TARGET_DIR/release/examples/transfer"

WORK=$(mktemp -d /tmp/syncfabric-bench.XXXXXX)
chmod 755 "$WORK"
PID=""
cleanup() { [ -n "$PID" ] && kill -- "-$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

# --- Apache with mod_dav on a free port
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/data" "$WORK/lock"
printf '%s:{SHA}%s\n' "$USER_NAME" "$(printf %s "$PASS" | openssl dgst -binary -sha1 | openssl base64)" > "$WORK/htpasswd"
M=/usr/lib/apache2/modules
cat > "$WORK/httpd.conf" <<CONF
ServerRoot "$WORK"
ServerName 127.0.0.1
Listen 127.0.0.1:$PORT
PidFile $WORK/httpd.pid
ErrorLog $WORK/error.log
LogLevel warn
# As the tests run it (and as it runs in production): worker processes with threads.
# Not -X: a single-connection Apache makes any client that opens a second connection
# wait out the first one's KeepAliveTimeout (5 s), which is not what a real server does.
LoadModule mpm_event_module $M/mod_mpm_event.so
StartServers 2
ServerLimit 4
ThreadsPerChild 8
MaxRequestWorkers 32
LoadModule authz_core_module $M/mod_authz_core.so
LoadModule authn_core_module $M/mod_authn_core.so
LoadModule authn_file_module $M/mod_authn_file.so
LoadModule auth_basic_module $M/mod_auth_basic.so
LoadModule authz_user_module $M/mod_authz_user.so
LoadModule dav_module $M/mod_dav.so
LoadModule dav_fs_module $M/mod_dav_fs.so
User www-data
Group www-data
DocumentRoot "$WORK/data"
DavLockDB "$WORK/lock/DavLock"
<Directory "$WORK/data">
  Dav On
  AuthType Basic
  AuthName "dav"
  AuthUserFile "$WORK/htpasswd"
  Require valid-user
</Directory>
CONF
[ "$(id -u)" = 0 ] && chown -R www-data:www-data "$WORK/data" "$WORK/lock"
setsid /usr/sbin/apache2 -DFOREGROUND -f "$WORK/httpd.conf" & PID=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
URL="http://127.0.0.1:$PORT/"

if [ "${MODE:-transfer}" = sync ]; then
  mkdir -p "$WORK/data/sync"
  [ "$(id -u)" = 0 ] && chown -R www-data:www-data "$WORK/data/sync"
  echo "== sync after one edit, through Apache mod_dav on loopback"
  SYNCFABRIC_REMOTE_PASSWORD=$PASS cargo run -q --release --example bench_sync -- \
    "webdav+http://$USER_NAME@127.0.0.1:$PORT/sync"
  exit 0
fi

# --- the file
mkdir -p "$WORK/local"
head -c "$((SIZE_MB * 1024 * 1024))" /dev/urandom > "$WORK/local/big.bin"
BYTES=$(stat -c %s "$WORK/local/big.bin")

OBS=$(rclone obscure "$PASS")
REMOTE=":webdav,url='$URL',user=$USER_NAME,pass=$OBS:"
export RCLONE_CONFIG="$WORK/rclone.conf" WEBDAV_PASS=$PASS
mkdir -p "$WORK/data/ours" "$WORK/data/rclone" "$WORK/down-ours" "$WORK/down-rclone"
[ "$(id -u)" = 0 ] && chown -R www-data:www-data "$WORK/data"

# One timed run: CLIENT OP. Prints "OP CLIENT SECONDS PEAK_KB".
run() {
  local client=$1 op=$2 t0 t1
  case "$op" in
    upload) rm -f "$WORK/data/$client/big.bin" ;;
    download) rm -f "$WORK/down-$client/big.bin" ;;
  esac
  sync
  t0=$(date +%s.%N)
  case "$client/$op" in
    ours/upload) /usr/bin/time -v -o "$WORK/time" "$BIN" upload "$URL" "$USER_NAME" \
      "$WORK/local/big.bin" ours/big.bin >/dev/null ;;
    ours/download) /usr/bin/time -v -o "$WORK/time" "$BIN" download "$URL" "$USER_NAME" \
      ours/big.bin "$WORK/down-ours/big.bin" >/dev/null ;;
    rclone/upload) /usr/bin/time -v -o "$WORK/time" rclone copy -q "$WORK/local/big.bin" \
      "${REMOTE}rclone/" ;;
    rclone/download) /usr/bin/time -v -o "$WORK/time" rclone copy -q \
      "${REMOTE}rclone/big.bin" "$WORK/down-rclone/" ;;
  esac
  t1=$(date +%s.%N)
  case "$op" in
    upload) cmp -s "$WORK/local/big.bin" "$WORK/data/$client/big.bin" ;;
    download) cmp -s "$WORK/local/big.bin" "$WORK/down-$client/big.bin" ;;
  esac || { echo "$client $op: the copy differs" >&2; exit 1; }
  echo "$op $client $(python3 -c "print(f'{$t1 - $t0:.3f}')") \
$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time") \
$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.2f", u+s}' "$WORK/time")" >> "$WORK/runs"
  tail -n 1 "$WORK/runs"
}

echo "== ${SIZE_MB} MiB to Apache mod_dav on loopback, $RUNS rounds, $(nproc) cores"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
: > "$WORK/runs"
for round in $(seq "$RUNS"); do
  if [ $((round % 2)) = 1 ]; then order="ours rclone"; else order="rclone ours"; fi
  for c in $order; do run "$c" upload; done
  for c in $order; do run "$c" download; done
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$WORK/runs" "$BYTES" <<'PY'
import statistics, sys
runs = [l.split() for l in open(sys.argv[1])]
size = int(sys.argv[2])
def med(op, c): return statistics.median(float(r[2]) for r in runs if r[0] == op and r[1] == c)
def peak(op, c): return max(int(r[3]) for r in runs if r[0] == op and r[1] == c) / 1024
def cpu(op, c): return statistics.median(float(r[4]) for r in runs if r[0] == op and r[1] == c)
print(f"{'op':<10}{'ours_s':>9}{'rclone_s':>10}{'ours_MB/s':>11}{'rclone_MB/s':>13}{'ratio':>7}{'ours_peak_MB':>14}{'rclone_peak_MB':>16}{'ours_cpu_s':>12}{'rclone_cpu_s':>14}")
for op in ("upload", "download"):
    o, r = med(op, "ours"), med(op, "rclone")
    print(f"{op:<10}{o:>9.3f}{r:>10.3f}{size/o/1e6:>11.1f}{size/r/1e6:>13.1f}{r/o:>7.2f}{peak(op,'ours'):>14.1f}{peak(op,'rclone'):>16.1f}{cpu(op,'ours'):>12.2f}{cpu(op,'rclone'):>14.2f}")
print("(medians; ratio = median rclone time / median our time; peaks = max RSS over the runs; cpu = user + system of the client)")
PY
