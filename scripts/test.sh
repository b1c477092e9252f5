#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine with only the Rust toolchain:
# installs what the tests need, starts the servers they use (127.0.0.1 only),
# runs format and lint checks and every cargo test, then stops what it started.
#
# Usage: bash scripts/test.sh        (from the repository root)
# Env:   RINGKIT_SKIP_INSTALL=1      skip apt-get (packages already present)
#        RINGKIT_REQUIRE_BROWSER=0   let the /ring browser test skip when chromium is
#                                    missing (default here: 1, a missing browser fails)
# Needs: etcd-server, prometheus, podman, debootstrap (Debian packages; installed here
#        when missing),
#        python3 + pip (kubernetes-validate, for scripts/validate-manifests.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n=== %s\n' "$*"; }

install_packages() {
  local need=()
  command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
  [ -x /usr/bin/prometheus-alertmanager ] || need+=(prometheus-alertmanager)
  # The /ring page browser test: headless chromium driven over WebDriver.
  # (a font too, so the screenshot it writes is readable)
  [ -x /usr/bin/chromium ] || need+=(chromium fonts-dejavu-core)
  [ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
  # Debian's Prometheus 2.42 for the remote write/read test (crates/ringkit/tests/
  # prometheus_remote.rs starts its own instance; the packaged service is not used).
  [ -x /usr/bin/prometheus ] || need+=(prometheus)
  # promtool (same package) reads the blocks crates/tsdb writes (tests/prometheus_tools.rs).
  [ -x /usr/bin/promtool ] || need+=(prometheus)
  # The container image (scripts/build-image.sh) and the cluster test run from it
  # (crates/ringkit/tests/container_cluster.rs): podman, and debootstrap for the base.
  command -v podman >/dev/null 2>&1 || need+=(podman)
  command -v runc >/dev/null 2>&1 || need+=(runc)
  command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
  command -v objcopy >/dev/null 2>&1 || need+=(binutils)
  # crates/ringkit/tests/listen_all.rs makes a network namespace and queries a node in it.
  command -v ip >/dev/null 2>&1 || need+=(iproute2)
  command -v curl >/dev/null 2>&1 || need+=(curl)
  if [ "${#need[@]}" -eq 0 ] || [ "${RINGKIT_SKIP_INSTALL:-0}" = 1 ]; then
    return
  fi
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
}

install_packages
export RINGKIT_REQUIRE_BROWSER="${RINGKIT_REQUIRE_BROWSER:-1}"

# Tests that need a real server fail (instead of skipping) when it is missing here.
export RINGKIT_REQUIRE_ALERTMANAGER=1

# The Prometheus test must fail, not skip, when the binary is missing.
export RINGKIT_REQUIRE_PROMETHEUS=1

# Kubernetes manifests against the API schemas (installs kubernetes-validate from PyPI).
log "deploy/kubernetes manifests"
bash scripts/validate-manifests.sh

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

log "cargo test (build)"
cargo test --workspace --all-targets --no-run
# ringkit-member's tests run its examples as programs; `cargo test` builds examples only
# with the test harness, so the programs themselves are built here.
cargo build -p ringkit-member --examples

# As root: the listen-all test makes its own network namespace, and the container image
# is built (from the debug binary just built) for the cluster test, which then must run.
if [ "$(id -u)" = 0 ]; then
  export RINGKIT_REQUIRE_NETNS=1
  log "container image (podman, Debian bookworm base, no registry)"
  RINGKIT_IMAGE_BINARY=target/debug/ringkit RINGKIT_SKIP_INSTALL=1 bash scripts/build-image.sh
  export RINGKIT_REQUIRE_CONTAINER=1
fi

log "cargo test"
cargo test --workspace --all-targets
cargo test --workspace --doc

# Every crate's README is its crate documentation; rustdoc must not warn (broken links,
# bad code blocks).
log "cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

# Every published crate must package for crates.io: licence, description, README, the
# files it builds from, and versioned path dependencies that resolve (this reads the
# crates.io index; nothing is compiled or uploaded).
log "cargo package --no-verify"
cargo package --no-verify --allow-dirty \
  -p ringkit-ring -p ringkit-kv -p ringkit-lifecycle -p ringkit-memberlist -p ringkit-member \
  -p ringkit-decompress -p ringkit-ingest -p ringkit-tsdb -p ringkit-dataplane -p ringkit-ship \
  -p ringkit

# The libFuzzer targets (fuzz/, its own workspace) must keep compiling; their bodies ran
# above on stable Rust (crates/fuzz-bodies: seeds plus mutations of every target).
log "fuzz targets compile"
(cd fuzz && cargo check --bins --locked)

log "all tests passed"
