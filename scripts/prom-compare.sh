#!/usr/bin/env bash
# One ringkit node (`--target=all`, RF 1, in-memory ring) against one Prometheus
# (`--web.enable-remote-write-receiver`) under the same `ringkit loadgen` load, one after the
# other on 127.0.0.1: acknowledged samples per CPU-second of the server process, its RSS,
# its data directory per acknowledged sample, and the time from a SIGKILL restart to ready.
#
# Usage: scripts/prom-compare.sh [loadgen flags...]
#   e.g. scripts/prom-compare.sh --series 100000 --samples-per-request 2000 --duration 2m
# Env:   RINGKIT=path/to/ringkit (default target/release/ringkit)
#        PROMETHEUS=path/to/prometheus (default: prometheus on PATH; Debian's package is 2.42)
#        BASE_PORT (default 19000)
#        WAL_SYNC=true|false (ringkit's fsync per push, default true; Prometheus never fsyncs
#          a remote-write append, so false is the like-for-like setting)
#        ONLY=ringkit|prometheus: run one side only
#        KEEP=1: keep the data directories and logs (the path is printed)
set -euo pipefail
cd "$(dirname "$0")/.."
RINGKIT=${RINGKIT:-target/release/ringkit}
PROMETHEUS=${PROMETHEUS:-$(command -v prometheus || true)}
BASE=${BASE_PORT:-19000}
WAL_SYNC=${WAL_SYNC:-true}
ONLY=${ONLY:-}
[[ -x "$RINGKIT" ]] || { echo "no ringkit binary at $RINGKIT (cargo build --release -p ringkit)" >&2; exit 1; }
[[ -z "$ONLY" || "$ONLY" == ringkit || -x "$PROMETHEUS" ]] || {
  echo "no prometheus binary (apt-get install prometheus, or PROMETHEUS=...)" >&2; exit 1; }
dir=$(mktemp -d)
pid=""
cleanup() {
  [[ -n "$pid" ]] && kill -9 "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  if [[ "${KEEP:-}" == 1 ]]; then echo "kept: $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT INT TERM

# Milliseconds since the epoch (for timing a restart).
now_ms() { date +%s%3N; }

# Waits (at most 120 s) until $1 answers 200; prints the milliseconds it took since $2.
wait_ready() {
  local url=$1 since=$2
  for _ in $(seq 1 2400); do
    if curl -sf -o /dev/null "$url"; then
      echo $(($(now_ms) - since))
      return 0
    fi
    sleep 0.05
  done
  echo "not ready after 120 s: $url" >&2
  return 1
}

start_ringkit() {
  "$RINGKIT" node --target=all --kv.store=inmemory --ingester.lifecycler.ID=single \
    --distributor.replication-factor=1 --ingester.min-ready-duration=0s \
    "--ingester.wal-sync-every-write=$WAL_SYNC" --blocks-storage.tsdb.dir="$dir/ringkit" \
    --server.http-listen-port="$BASE" --server.grpc-listen-port="$((BASE + 1))" \
    --memberlist.bind-port="$((BASE + 2))" >/dev/null 2>>"$dir/ringkit.log" &
  pid=$!
}

start_prometheus() {
  "$PROMETHEUS" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/prometheus" \
    --web.listen-address="127.0.0.1:$((BASE + 5))" --web.enable-remote-write-receiver \
    >/dev/null 2>>"$dir/prometheus.log" &
  pid=$!
}

# run NAME START PUSH_URL READY_URL DATA_DIR loadgen-flags...
run() {
  local name=$1 start=$2 push=$3 ready=$4 data=$5
  shift 5
  echo "=== $name"
  local t0
  t0=$(now_ms)
  "$start"
  echo "ready after $(wait_ready "$ready" "$t0") ms (empty data dir)"
  "$RINGKIT" loadgen --url "$push" --watch-pid "$pid" --watch-dir "$data" "$@" |
    tee "$dir/$name.loadgen"
  echo "RSS after the load: $(awk '/VmRSS/ {print $2, $3}' "/proc/$pid/status")"
  local bytes acked
  bytes=$(du -sb "$data" | cut -f1)
  acked=$(grep -o 'acknowledged: [0-9]*' "$dir/$name.loadgen" | head -1 | tr -dc '0-9')
  echo "data dir: $bytes bytes = $(awk -v b="$bytes" -v a="${acked:-0}" \
    'BEGIN { if (a > 0) printf "%.2f", b / a; else print "?" }') B per acknowledged sample"
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  t0=$(now_ms)
  "$start"
  echo "restart after SIGKILL: ready after $(wait_ready "$ready" "$t0") ms ($(du -sh "$data" | cut -f1) of data)"
  echo "RSS after the restart: $(awk '/VmRSS/ {print $2, $3}' "/proc/$pid/status")"
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  pid=""
}

printf 'global:\n  scrape_interval: 1m\nscrape_configs: []\n' >"$dir/prometheus.yml"
if [[ "$ONLY" != prometheus ]]; then
  run ringkit start_ringkit "http://127.0.0.1:$BASE/api/v1/push" \
    "http://127.0.0.1:$BASE/ready" "$dir/ringkit" "$@"
fi
if [[ "$ONLY" != ringkit ]]; then
  run prometheus start_prometheus "http://127.0.0.1:$((BASE + 5))/api/v1/write" \
    "http://127.0.0.1:$((BASE + 5))/-/ready" "$dir/prometheus" "$@"
fi
