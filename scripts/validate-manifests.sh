#!/usr/bin/env bash
# Validates deploy/kubernetes/*.yaml against the Kubernetes API schemas (strict: unknown
# fields are errors) with kubernetes-validate from PyPI, which bundles the schemas, so no
# cluster or network is needed once it is installed. Fails (never skips) when the tool
# cannot be installed or a manifest does not validate.
#
# Usage: bash scripts/validate-manifests.sh    (from anywhere)
# Env:   RINGKIT_K8S_VERSION (default 1.30.0): the API version validated against.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  python3 -m pip install --quiet 'kubernetes-validate==1.37.0' \
    || python3 -m pip install --quiet --user 'kubernetes-validate==1.37.0' \
    || python3 -m pip install --quiet --break-system-packages 'kubernetes-validate==1.37.0'
  export PATH="$HOME/.local/bin:$PATH"
fi
command -v kubernetes-validate >/dev/null 2>&1 || {
  echo "kubernetes-validate is not installed and could not be installed" >&2
  exit 1
}
kubernetes-validate --strict --quiet -k "${RINGKIT_K8S_VERSION:-1.30.0}" deploy/kubernetes/*.yaml
echo "deploy/kubernetes: every manifest validates"
