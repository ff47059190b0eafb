#!/usr/bin/env bash
# The `slurm` ctest label (docs/sweep.md): starts a one-node Slurm on localhost
# (scripts/slurm-one-node.sh), runs a small sweep as a Slurm array with its merge job
# (`iommusim sweep --slurm --submit`), runs the same sweep on the local pool, and checks
# that both merged results.csv files are byte-identical and that every point ran as a task.
# Exit 77 (ctest: skipped) when Slurm cannot start here, saying why.
#   usage: sweep_on_slurm.sh IOMMUSIM SOURCE_DIR WORK_DIR
set -euo pipefail
iommusim=$1
source_dir=$2
work=$3

rm -rf "$work"
mkdir -p "$work"
cluster="$work/cluster"
set +e
env_line=$("$source_dir/scripts/slurm-one-node.sh" start "$cluster")
rc=$?
set -e
stop() { "$source_dir/scripts/slurm-one-node.sh" stop "$cluster"; }
trap stop EXIT
if [ $rc -eq 77 ]; then
  echo "sweep_on_slurm: SKIPPED: Slurm cannot start on this machine" >&2
  exit 77
fi
[ $rc -eq 0 ] || { echo "sweep_on_slurm: starting Slurm failed (exit $rc)" >&2; exit 1; }
eval "$env_line"

# 2 latencies x 2 seeds = 4 points; 2 latencies x 2 vendors = 4 CSV rows.
cat > "$work/spec.json" <<'SPEC'
{
  "about": "the slurm test: a small array sweep",
  "set": {"traffic.transactions": 400, "iommu.vendor": "smmuv3,vtd"},
  "sweep": {"memory.latency_cycles": [40, 120]},
  "seeds": {"count": 2},
  "stats": ["driver.invalidation.latency.mean", "driver.invalidation.latency.p99", "iommu.iotlb.hit_rate"]
}
SPEC

"$iommusim" sweep "$work/spec.json" -o "$work/local" -j 2
"$iommusim" sweep "$work/spec.json" -o "$work/slurm" --slurm --submit

# Wait for the array and its merge job to leave the queue.
for _ in $(seq 300); do
  [ -z "$(squeue -h -o %i)" ] && break
  sleep 0.5
done
if [ -n "$(squeue -h -o %i)" ]; then
  echo "sweep_on_slurm: jobs still queued after 150 s:" >&2
  squeue >&2
  exit 1
fi

fail() {
  echo "sweep_on_slurm: FAILED: $*" >&2
  for f in "$work"/slurm/slurm/*.out; do [ -e "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }; done
  exit 1
}
[ -s "$work/slurm/results.csv" ] || fail "the merge job wrote no results.csv"
for task in 0 1 2 3; do
  ls "$work"/slurm/slurm/*_"$task".out >/dev/null 2>&1 || fail "no Slurm output for array task $task"
  grep -q "point $task done" "$work"/slurm/slurm/*_"$task".out || fail "array task $task did not run its point"
done
[ "$("$iommusim" sweep "$work/spec.json" -o "$work/slurm" --list | grep -c '  done  ')" -eq 4 ] || fail "not every point is done"
cmp "$work/local/results.csv" "$work/slurm/results.csv" || fail "the Slurm sweep's results.csv differs from the local pool's"
[ "$(wc -l < "$work/slurm/results.csv")" -eq 5 ] || fail "expected a header and 4 rows in results.csv"
echo "sweep_on_slurm: the Slurm array's results.csv is byte-identical to the local pool's ($(wc -l < "$work/slurm/results.csv") lines)"
