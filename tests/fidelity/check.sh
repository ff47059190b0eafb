#!/usr/bin/env bash
# Fidelity check for a change to the timing core (tests/fidelity/README.md): runs the
# default config and every example with a reference binary and a candidate binary, with
# the unmap loop off, and compares each pair with `iommusim compare` under template.json's
# tolerances (hit rates within 0.5 percentage points, reads per walk within 1%, mean
# latencies within 5%).
#   tests/fidelity/check.sh REFERENCE_IOMMUSIM CANDIDATE_IOMMUSIM [OUT_DIR] [-p key=value]...
set -euo pipefail
ref=$1 cand=$2 out=${3:-/tmp/iommusim-fidelity}
shift $(( $# >= 3 ? 3 : 2 ))
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
failed=0
for cfg in default "$src"/configs/examples/*.json; do
  name=$(basename "$cfg" .json)
  args=()
  [[ $cfg != default ]] && args=("$cfg")
  "$ref" run "${args[@]}" --force -o "$out/$name.ref" -p workload.unmap_interval_ns=0 "$@" > /dev/null
  "$cand" run "${args[@]}" --force -o "$out/$name.new" -p workload.unmap_interval_ns=0 "$@" > /dev/null
  cp "$src/tests/fidelity/template.json" "$out/$name.golden.json"
  "$cand" compare --bless "$out/$name.ref" "$out/$name.golden.json" > /dev/null
  if "$cand" compare "$out/$name.new" "$out/$name.golden.json" > "$out/$name.compare.txt"; then
    echo "$name: figures hold"
  else
    echo "$name: DIFFERS"; sed 's/^/  /' "$out/$name.compare.txt"; failed=1
  fi
done
exit $failed
