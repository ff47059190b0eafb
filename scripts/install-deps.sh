#!/usr/bin/env bash
# Installs the Debian packages iommusim needs to build and test. Idempotent: does nothing
# when everything is already present.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config   # g++ brings libasan and libubsan (make test-sanitize)
  libsystemc-dev          # SystemC 2.3.4 + TLM-2.0 (built as C++17)
  nlohmann-json3-dev      # config and stats JSON
  libcli11-dev            # command line
  libgtest-dev libgmock-dev googletest
  libbenchmark-dev        # bench/
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
