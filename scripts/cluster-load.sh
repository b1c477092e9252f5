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
set -euo pipefail
cd "$(dirname "$0")/.."
RINGKIT=${RINGKIT:-target/release/ringkit}
BASE=${BASE_PORT:-18000}
WAL_SYNC=${WAL_SYNC:-true}
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
for i in 0 1 2; do
  "$RINGKIT" node --target=ingester "${kv[@]}" "--ingester.lifecycler.ID=ing-$i" \
    --ingester.min-ready-duration=0s "--ingester.wal-sync-every-write=$WAL_SYNC" \
    "--server.http-listen-port=$((BASE + 10 + i))" "--server.grpc-listen-port=$((BASE + 15 + i))" \
    "--ingester.wal-dir=$dir/wal-$i" >/dev/null 2>"$dir/ing-$i.log" &
  pids+=($!)
  ing_pids[$i]=$!
done
"$RINGKIT" node --target=distributor "${kv[@]}" "--server.http-listen-port=$((BASE + 2))" \
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
"$RINGKIT" loadgen --url "$url/api/v1/push" --watch-pid "$dist" --watch-pid "${ing_pids[0]}" \
  --watch-dir "$dir/wal-0" "$@"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
