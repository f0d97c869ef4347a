#!/usr/bin/env bash
# Upload and download of a large file (default 500 MB) to a local Apache mod_dav server,
# through syncfabric-webdav (examples/transfer.rs) and through `rclone copy`, in the same
# run. Prints throughput, the ratio ours/rclone (target >= 1.0) and our peak memory
# (/usr/bin/time -v, target < 64 MB).
#
#   scripts/bench-webdav.sh            # 500 MB
#   SIZE_MB=100 scripts/bench-webdav.sh
#   MODE=sync scripts/bench-webdav.sh  # instead: sync after one edit of a 10,000-item
#                                      # vault through this server (examples/bench_sync.rs)
#
# Needs: apache2, rclone, /usr/bin/time (package `time`), cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-500}
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
LoadModule mpm_prefork_module $M/mod_mpm_prefork.so
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
setsid /usr/sbin/apache2 -X -f "$WORK/httpd.conf" & PID=$!
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

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.3f}')"; }
mbps() { python3 -c "print(f'{$BYTES / ($2 - $1) / 1e6:.1f}')"; }

# --- rclone (independent client): upload then download
OBS=$(rclone obscure "$PASS")
REMOTE=":webdav,url='$URL',user=$USER_NAME,pass=$OBS:"
export RCLONE_CONFIG="$WORK/rclone.conf"
t0=$(now); rclone copy -q "$WORK/local/big.bin" "${REMOTE}rclone/"; t1=$(now)
mkdir -p "$WORK/rclone-down"
t2=$(now); rclone copy -q "${REMOTE}rclone/big.bin" "$WORK/rclone-down/"; t3=$(now)
cmp -s "$WORK/local/big.bin" "$WORK/rclone-down/big.bin" || { echo "rclone download differs"; exit 1; }
rm -f "$WORK/rclone-down/big.bin"

# --- ours
export WEBDAV_PASS=$PASS
t4=$(now); /usr/bin/time -v -o "$WORK/up.time" "$BIN" upload "$URL" "$USER_NAME" "$WORK/local/big.bin" ours/big.bin >/dev/null; t5=$(now)
t6=$(now); /usr/bin/time -v -o "$WORK/down.time" "$BIN" download "$URL" "$USER_NAME" ours/big.bin "$WORK/local/back.bin" >/dev/null; t7=$(now)
cmp -s "$WORK/local/big.bin" "$WORK/local/back.bin" || { echo "our download differs"; exit 1; }
cmp -s "$WORK/local/big.bin" "$WORK/data/ours/big.bin" || { echo "our upload differs"; exit 1; }
rss() { awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$1"; }

echo "== ${SIZE_MB} MiB to Apache mod_dav on loopback"
printf '%-10s %12s %12s %8s %14s\n' op ours_MB/s rclone_MB/s ratio ours_peak_MB
printf '%-10s %12s %12s %8s %14s\n' upload "$(mbps "$t4" "$t5")" "$(mbps "$t0" "$t1")" \
  "$(python3 -c "print(f'{($t1-$t0)/($t5-$t4):.2f}')")" "$(rss "$WORK/up.time")"
printf '%-10s %12s %12s %8s %14s\n' download "$(mbps "$t6" "$t7")" "$(mbps "$t2" "$t3")" \
  "$(python3 -c "print(f'{($t3-$t2)/($t7-$t6):.2f}')")" "$(rss "$WORK/down.time")"
echo "(times include process start and connect for both; ratio = rclone time / our time)"
