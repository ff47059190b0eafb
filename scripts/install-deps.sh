#!/usr/bin/env bash
# Installs what iommusim needs to build and test: Debian packages, then the plotting
# library `iommusim report` inlines into its HTML reports (npm, into a git-ignored folder).
# Idempotent: does nothing when everything is already present.
#   scripts/install-deps.sh          build and test (make build, make test)
#   scripts/install-deps.sh slurm    the slurm test label only (make slurm-test): Debian packages
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake pkg-config   # g++ brings libasan and libubsan (make test-sanitize)
  libsystemc-dev          # SystemC 2.3.4 + TLM-2.0 (built as C++17)
  nlohmann-json3-dev      # config and stats JSON
  libcli11-dev            # command line
  libgtest-dev libgmock-dev googletest
  libbenchmark-dev        # bench/
  chromium                # the report test renders a report headless (docs/report.md)
)
# npm installs Vega-Lite below; any Node.js with npm will do (the machine's, or Debian's).
command -v npm >/dev/null 2>&1 || PACKAGES+=(nodejs npm)

# A one-node Slurm on localhost for the `slurm` test label (tests/slurm, docs/sweep.md):
# the controller and node daemons, sbatch/squeue/sinfo, and munge for their credentials.
SLURM_PACKAGES=(slurmctld slurmd slurm-client munge)
mode=${1:-}
if [ "$mode" = slurm ]; then
  PACKAGES=("${SLURM_PACKAGES[@]}")
elif [ $# -gt 0 ]; then
  echo "usage: $0 [slurm]" >&2
  exit 2
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -ne 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
[ "$mode" = slurm ] && exit 0

# Vega, Vega-Lite and vega-embed, at the versions third_party/vega/package-lock.json pins.
# Why npm: Debian ships no Vega-Lite; `iommusim report` inlines their prebuilt browser
# bundles, so a report opens offline. The stamp records which lock the folder came from.
VEGA=third_party/vega
if ! cmp -s "$VEGA/package-lock.json" "$VEGA/node_modules/.iommusim-lock"; then
  echo "install-deps: installing Vega-Lite into $VEGA/node_modules (npm ci)" >&2
  (cd "$VEGA" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
  cp "$VEGA/package-lock.json" "$VEGA/node_modules/.iommusim-lock"
fi
