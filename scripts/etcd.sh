#!/usr/bin/env bash
# Starts or stops a throwaway etcd for ringkit's tests, on 127.0.0.1 only.
#
#   scripts/etcd.sh start   # prints and writes target/etcd.env (RINGKIT_ETCD_ENDPOINTS=...)
#   source target/etcd.env && cargo test -p ringkit-kv
#   scripts/etcd.sh stop    # kills only the pid recorded by `start`, removes its data dir
#
# Environment: RINGKIT_ETCD_BIN (default /usr/bin/etcd), RINGKIT_ETCD_ENV (default
# target/etcd.env). The kv tests start their own etcd when RINGKIT_ETCD_ENDPOINTS is unset,
# so this script is only needed to share one server between runs.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
env_file="${RINGKIT_ETCD_ENV:-$root/target/etcd.env}"
bin="${RINGKIT_ETCD_BIN:-/usr/bin/etcd}"

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 30000))
    if ! port_in_use "$p"; then
      echo "$p"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}

start() {
  if [[ -f "$env_file" ]]; then
    echo "already started (see $env_file); run '$0 stop' first" >&2
    exit 1
  fi
  if [[ ! -x "$bin" ]]; then
    echo "etcd not found at $bin: apt-get install -y etcd-server (or set RINGKIT_ETCD_BIN)" >&2
    exit 1
  fi
  local client peer dir log pid
  client="$(free_port)"
  peer="$(free_port)"
  while [[ "$peer" == "$client" ]]; do peer="$(free_port)"; done
  dir="$(mktemp -d -t ringkit-etcd-XXXXXX)"
  log="$dir/etcd.log"
  "$bin" --name=ringkit-test --data-dir="$dir/data" \
    --listen-client-urls="http://127.0.0.1:$client" \
    --advertise-client-urls="http://127.0.0.1:$client" \
    --listen-peer-urls="http://127.0.0.1:$peer" \
    --initial-advertise-peer-urls="http://127.0.0.1:$peer" \
    --initial-cluster="ringkit-test=http://127.0.0.1:$peer" \
    --logger=zap --log-outputs=stderr >"$log" 2>&1 &
  pid=$!
  # Wait (at most 30 s) for etcd's own "serving clients" log line.
  for _ in $(seq 1 300); do
    if grep -qE "serving client traffic|ready to serve client requests" "$log"; then
      mkdir -p "$(dirname "$env_file")"
      {
        echo "export RINGKIT_ETCD_ENDPOINTS=http://127.0.0.1:$client"
        echo "export RINGKIT_ETCD_PID=$pid"
        echo "export RINGKIT_ETCD_DIR=$dir"
      } >"$env_file"
      cat "$env_file"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "etcd exited; log:" >&2
      tail -20 "$log" >&2
      rm -rf "$dir"
      exit 1
    fi
    sleep 0.1
  done
  echo "etcd did not become ready in 30 s; stopping it" >&2
  kill "$pid" 2>/dev/null || true
  rm -rf "$dir"
  exit 1
}

stop() {
  if [[ ! -f "$env_file" ]]; then
    echo "not started ($env_file missing)" >&2
    return 0
  fi
  # shellcheck disable=SC1090
  source "$env_file"
  # Kill only our pid, and only if it is still the etcd we started (pids get reused).
  if [[ -n "${RINGKIT_ETCD_PID:-}" ]] && tr '\0' ' ' <"/proc/$RINGKIT_ETCD_PID/cmdline" 2>/dev/null | grep -q -- "--data-dir=$RINGKIT_ETCD_DIR/data"; then
    kill "$RINGKIT_ETCD_PID"
    for _ in $(seq 1 50); do
      kill -0 "$RINGKIT_ETCD_PID" 2>/dev/null || break
      sleep 0.1
    done
  fi
  if [[ -n "${RINGKIT_ETCD_DIR:-}" && "$RINGKIT_ETCD_DIR" == /tmp/ringkit-etcd-* ]]; then
    rm -rf "$RINGKIT_ETCD_DIR"
  fi
  rm -f "$env_file"
  echo "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
