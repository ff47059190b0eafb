#!/usr/bin/env bash
# Installs the Debian packages iommusim needs to build and test. Idempotent: does nothing
# when everything is already present.
#   scripts/install-deps.sh          build and test (make build, make test)
#   scripts/install-deps.sh slurm    the slurm test label only (make slurm-test)
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config   # g++ brings libasan and libubsan (make test-sanitize)
  libsystemc-dev          # SystemC 2.3.4 + TLM-2.0 (built as C++17)
  nlohmann-json3-dev      # config and stats JSON
  libcli11-dev            # command line
  libgtest-dev libgmock-dev googletest
  libbenchmark-dev        # bench/
)

# A one-node Slurm on localhost for the `slurm` test label (tests/slurm, docs/sweep.md):
# the controller and node daemons, sbatch/squeue/sinfo, and munge for their credentials.
SLURM_PACKAGES=(slurmctld slurmd slurm-client munge)
if [ "${1:-}" = slurm ]; then
  PACKAGES=("${SLURM_PACKAGES[@]}")
elif [ $# -gt 0 ]; then
  echo "usage: $0 [slurm]" >&2
  exit 2
fi

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
