#!/usr/bin/env bash
# Parallel efficiency of the local sweep pool (issue: "a 1000-point sweep of the default
# config, 10k DMAs per vendor, under 90 s on 2 cores at >= 90% parallel efficiency").
#
# Runs the same sweep R times as a pair: with `-j J` (default: the number of cores), then
# with `-j 1`, into fresh folders, and checks that both finished every point and merged the
# same results.csv. Prints each run's wall, user and system time and the efficiency
# wall(-j 1) / (J x wall(-j J)), per pair and of the medians. Wall time, not CPU time, is
# what a pool saves; the CPU ratio (user + sys at -j J over -j 1) shows whether the points
# cost more CPU when they run at once, and moves less than wall time where the host steals
# time from a virtual machine's CPUs.
#
#   bench/sweep_efficiency.sh [--iommusim BIN] [--points N] [--pairs R] [-j J]
#                             [--transactions T] [--out DIR]
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bin=""
points=1000
pairs=3
jobs="$(nproc)"
transactions=10000
out=""

usage() { sed -n '/^#   bench/,/^$/p' "$0" | sed 's/^# \{0,3\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --iommusim|--points|--pairs|-j|--transactions|--out)
      [ $# -ge 2 ] || { echo "sweep_efficiency: $1 needs a value" >&2; exit 2; } ;;&
    --iommusim) bin="$2"; shift 2 ;;
    --points) points="$2"; shift 2 ;;
    --pairs) pairs="$2"; shift 2 ;;
    -j) jobs="$2"; shift 2 ;;
    --transactions) transactions="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "sweep_efficiency: unknown argument '$1'" >&2; usage ;;
  esac
done
for n in "$points" "$pairs" "$jobs" "$transactions"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "sweep_efficiency: '$n' is not a positive integer" >&2; exit 2; }
done
[ "$jobs" -ge 2 ] || { echo "sweep_efficiency: -j must be at least 2 to compare with -j 1" >&2; exit 2; }
if [ -z "$bin" ]; then
  for b in "$root/build-release/iommusim" "$root/build/iommusim"; do [ -x "$b" ] && { bin="$b"; break; }; done
fi
[ -n "$bin" ] && [ -x "$bin" ] || { echo "sweep_efficiency: no iommusim binary (build it, or pass --iommusim)" >&2; exit 2; }
[ -n "$out" ] || out="$(mktemp -d /tmp/iommusim-sweep-efficiency.XXXXXX)"
mkdir -p "$out"

spec="$out/spec.json"
cat > "$spec" <<EOF
{
  "about": "sweep_efficiency: the default config, $transactions DMAs per vendor, $points seeds",
  "set": { "traffic.transactions": $transactions },
  "seeds": { "first": 1, "count": $points },
  "stats": ["iommu.*.hit_rate", "driver.invalidation.latency.mean"]
}
EOF

echo "sweep_efficiency: $bin, $points points, $pairs pair(s) of -j $jobs and -j 1, folders under $out" >&2
TIMEFORMAT='%R %U %S'
declare -a wall_par wall_ser cpu_par cpu_ser
printf '%-5s %-6s %9s %9s %9s\n' pair jobs "wall s" "user s" "sys s"
run_one() {   # run_one J DIR -> prints "wall user sys"
  local t
  { t=$( { time "$bin" sweep "$spec" -o "$2" -j "$1" --force > "$2.log" 2>&1; } 2>&1 ); } \
    || { echo "sweep_efficiency: the -j $1 sweep failed; see $2.log" >&2; exit 1; }
  local done_points
  done_points=$(find "$2/points" -mindepth 2 -maxdepth 2 -name done.json | wc -l)
  [ "$done_points" -eq "$points" ] \
    || { echo "sweep_efficiency: the -j $1 sweep finished $done_points of $points points" >&2; exit 1; }
  echo "$t"
}
for p in $(seq "$pairs"); do
  rm -rf "$out/par" "$out/ser"
  read -r w u s < <(run_one "$jobs" "$out/par") || exit 1   # run_one said why
  wall_par+=("$w"); cpu_par+=("$(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }')")
  printf '%-5s %-6s %9s %9s %9s\n' "$p" "$jobs" "$w" "$u" "$s"
  read -r w u s < <(run_one 1 "$out/ser") || exit 1
  wall_ser+=("$w"); cpu_ser+=("$(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }')")
  printf '%-5s %-6s %9s %9s %9s\n' "$p" 1 "$w" "$u" "$s"
  for d in par ser; do
    [ -s "$out/$d/results.csv" ] || { echo "sweep_efficiency: $out/$d has no results.csv" >&2; exit 1; }
  done
  cmp -s "$out/par/results.csv" "$out/ser/results.csv" \
    || { echo "sweep_efficiency: -j $jobs and -j 1 merged different results.csv" >&2; exit 1; }
  awk -v s="${wall_ser[-1]}" -v q="${wall_par[-1]}" -v j="$jobs" \
    'BEGIN { printf "      efficiency of this pair: %.1f%%\n", 100 * s / (j * q) }'
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mp=$(median "${wall_par[@]}"); ms=$(median "${wall_ser[@]}")
cp=$(median "${cpu_par[@]}"); cs=$(median "${cpu_ser[@]}")
awk -v s="$ms" -v q="$mp" -v j="$jobs" -v n="$points" -v cp="$cp" -v cs="$cs" 'BEGIN {
  printf "median wall: -j %d %.2f s, -j 1 %.2f s; efficiency of the medians %.1f%%; %.1f ms per point at -j 1\n",
         j, q, s, 100 * s / (j * q), 1000 * s / n
  printf "median CPU (user + sys): -j %d %.2f s, -j 1 %.2f s; the points cost %.3fx the CPU when run %d at once\n",
         j, cp, cs, cp / cs, j }'
