#!/usr/bin/env bash
# Starts a 3-ingester RF 3 cluster (etcd ring store, fsync per push) on 127.0.0.1 and runs
# `ringkit loadgen` against its distributor, watching the distributor's and the first
# ingester's CPU, RSS and fds and the first ingester's WAL size; stops what it started.
#
# Usage: scripts/cluster-load.sh [loadgen flags...]
#   e.g. scripts/cluster-load.sh --series 20000 --concurrency 8 --duration 30s --read-back
# Env:   RINGKIT=path/to/ringkit (default target/release/ringkit)
#        BASE_PORT (default 18000): etcd, distributor and ingesters use BASE_PORT..+20
#        WAL_SYNC=true|false (default true)
#        INGESTER_ARGS="..." extra flags for every ingester (e.g. a short block range for soaks)
#        RESTART_AFTER=1: after the generator, SIGKILL the first ingester, start it again with
#          the same flags and data and print how long it took until its /ready answered 200
#        NICE=n: run the cluster and the generator at this niceness (default 0)
set -euo pipefail
cd "$(dirname "$0")/.."
RINGKIT=${RINGKIT:-target/release/ringkit}
BASE=${BASE_PORT:-18000}
WAL_SYNC=${WAL_SYNC:-true}
read -r -a extra <<<"${INGESTER_ARGS:-}"
run=(nice -n "${NICE:-0}")
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

etcd --data-dir "$dir/etcd" --name loadgen \
  --listen-client-urls "http://127.0.0.1:$BASE" --advertise-client-urls "http://127.0.0.1:$BASE" \
  --listen-peer-urls "http://127.0.0.1:$((BASE + 1))" \
  --initial-advertise-peer-urls "http://127.0.0.1:$((BASE + 1))" \
  --initial-cluster "loadgen=http://127.0.0.1:$((BASE + 1))" >"$dir/etcd.log" 2>&1 &
pids+=($!)
kv=(--kv.store=etcd "--etcd.endpoints=127.0.0.1:$BASE")
start_ingester() {
  local i=$1
  "${run[@]}" "$RINGKIT" node --target=ingester "${kv[@]}" "--ingester.lifecycler.ID=ing-$i" \
    --ingester.min-ready-duration=0s "--ingester.wal-sync-every-write=$WAL_SYNC" \
    "--server.http-listen-port=$((BASE + 10 + i))" "--server.grpc-listen-port=$((BASE + 15 + i))" \
    "--ingester.wal-dir=$dir/wal-$i" "${extra[@]}" >/dev/null 2>>"$dir/ing-$i.log" &
  pids+=($!)
  ing_pids[$i]=$!
}
for i in 0 1 2; do
  start_ingester "$i"
done
"${run[@]}" "$RINGKIT" node --target=distributor "${kv[@]}" "--server.http-listen-port=$((BASE + 2))" \
  >/dev/null 2>"$dir/distributor.log" &
pids+=($!)
dist=$!
url="http://127.0.0.1:$((BASE + 2))"
for _ in $(seq 1 100); do
  if curl -sf -H 'Accept: application/json' "$url/ring" 2>/dev/null |
     grep -o '"state":"ACTIVE"' | wc -l | grep -qx 3; then
    break
  fi
  sleep 0.2
done
echo "cluster up: distributor pid $dist, ingester pids ${ing_pids[*]}, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"${run[@]}" "$RINGKIT" loadgen --url "$url/api/v1/push" --watch-pid "$dist" --watch-pid "${ing_pids[0]}" \
  --watch-dir "$dir/wal-0" "$@"
if [ "${RESTART_AFTER:-0}" = 1 ]; then
  echo "data of ing-0 before the restart: $(du -sh "$dir/wal-0" | cut -f1) in $(find "$dir/wal-0" -type f | wc -l) files"
  kill -9 "${ing_pids[0]}"
  wait "${ing_pids[0]}" 2>/dev/null || true
  t0=$(date +%s.%N)
  start_ingester 0
  ready=""
  for _ in $(seq 1 1200); do  # at most 120 s
    if curl -sf "http://127.0.0.1:$((BASE + 10))/ready" >/dev/null 2>&1; then
      ready=$(date +%s.%N)
      break
    fi
    sleep 0.1
  done
  if [ -n "$ready" ]; then
    echo "ing-0 restart after SIGKILL: ready after $(awk -v a="$t0" -v b="$ready" 'BEGIN { printf "%.2f", b - a }') s, RSS $(awk '/VmRSS/ {print $2, $3}' "/proc/${ing_pids[0]}/status")"
  else
    echo "ing-0 restart after SIGKILL: not ready within 120 s"; tail -5 "$dir/ing-0.log"
  fi
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
