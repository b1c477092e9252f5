#!/usr/bin/env bash
# Builds the ringkit container image on this machine with podman, from Debian packages
# only (no registry is reachable, so nothing is pulled):
#   1. a Debian bookworm minbase root filesystem made by debootstrap and imported as the
#      local base image (once; kept in podman's store for later builds);
#   2. deploy/container/Containerfile on top of it: the ringkit binary, a non-root user,
#      the ports exposed.
#
# Usage: bash scripts/build-image.sh          (from anywhere; runs as root or with sudo)
# Env:   RINGKIT_IMAGE=ringkit:latest         name of the image built
#        RINGKIT_IMAGE_BINARY=path            put this binary in the image instead of
#                                             building one with `cargo build --release`
#                                             (scripts/test.sh passes the debug build)
#        RINGKIT_BASE_IMAGE=localhost/ringkit-base:bookworm
#        RINGKIT_REBUILD_BASE=1               debootstrap the base image again
#        RINGKIT_DEBIAN_MIRROR=http://deb.debian.org/debian
#        RINGKIT_SKIP_INSTALL=1               do not apt-get install podman/debootstrap
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${RINGKIT_IMAGE:-ringkit:latest}"
BASE="${RINGKIT_BASE_IMAGE:-localhost/ringkit-base:bookworm}"
MIRROR="${RINGKIT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# cgroupfs and file events: no systemd is needed. runc, not crun: crun refuses this
# machine kind's hybrid cgroup v1/v2 layout. The process limits are set explicitly at or
# below this shell's own: podman's default (1048576 open files) cannot be granted here
# (no CAP_SYS_RESOURCE), and the OCI runtime then fails to start any container.
PODMAN=(podman --cgroup-manager=cgroupfs --events-backend=file --runtime=runc)
ULIMITS=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=4096:4096)

log() { printf '=== build-image: %s\n' "$*"; }
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi

need=()
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if [ "${#need[@]}" -gt 0 ] && [ "${RINGKIT_SKIP_INSTALL:-0}" != 1 ]; then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

work="$(mktemp -d)"
trap '$SUDO rm -rf "$work"' EXIT

start=$SECONDS
if [ "${RINGKIT_REBUILD_BASE:-0}" = 1 ] || ! $SUDO "${PODMAN[@]}" image exists "$BASE"; then
  log "debootstrap bookworm (minbase) from $MIRROR"
  $SUDO debootstrap --variant=minbase --include=ca-certificates bookworm "$work/rootfs" "$MIRROR" \
    >"$work/debootstrap.log" 2>&1 || { cat "$work/debootstrap.log"; exit 1; }
  # No package caches or lists in the image.
  $SUDO rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  log "importing the root filesystem as $BASE"
  $SUDO tar -C "$work/rootfs" --numeric-owner -cf - . \
    | $SUDO "${PODMAN[@]}" import --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
  log "base image made in $((SECONDS - start)) s"
else
  log "base image $BASE present (RINGKIT_REBUILD_BASE=1 makes it again)"
fi

if [ -n "${RINGKIT_IMAGE_BINARY:-}" ]; then
  binary="$RINGKIT_IMAGE_BINARY"
else
  log "cargo build --release -p ringkit"
  cargo build --release -p ringkit
  binary=target/release/ringkit
fi
[ -x "$binary" ] || { echo "build-image: $binary is not an executable" >&2; exit 1; }

# The build context holds only the binary (without debug info: the debug build's is
# hundreds of megabytes).
mkdir -p "$work/context"
objcopy --strip-debug "$binary" "$work/context/ringkit"
step=$SECONDS
log "podman build $IMAGE (binary: $binary)"
$SUDO "${PODMAN[@]}" build --pull=never --network=none "${ULIMITS[@]}" --build-arg "BASE=$BASE" \
  -f deploy/container/Containerfile -t "$IMAGE" "$work/context"
size="$($SUDO "${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")"
log "built $IMAGE in $((SECONDS - step)) s ($((SECONDS - start)) s in all), $((size / 1000000)) MB"
# The image runs: the binary starts in it as the non-root user.
$SUDO "${PODMAN[@]}" run --rm --network=none "${ULIMITS[@]}" "$IMAGE" --version
$SUDO "${PODMAN[@]}" run --rm --network=none "${ULIMITS[@]}" --entrypoint id "$IMAGE"
