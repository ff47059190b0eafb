#!/usr/bin/env bash
# A private one-node Slurm cluster on localhost, for the `slurm` test label (docs/sweep.md).
#
#   scripts/slurm-one-node.sh start DIR   writes DIR/slurm.conf, starts munged, slurmctld and
#                                         slurmd, waits for the node to be idle; prints
#                                         `export SLURM_CONF=DIR/slurm.conf`
#   scripts/slurm-one-node.sh stop DIR    stops the daemons started in DIR (by their pid files)
#
# Everything lives in DIR: its own munge key and socket (AuthInfo=socket=...), so neither
# /etc/munge nor a system Slurm is touched, and ports 16817/16818 stay clear of a system
# Slurm's defaults. Needs root (the daemons run as root: SlurmUser=root) and Debian's
# slurmctld, slurmd, slurm-client and munge (scripts/install-deps.sh slurm).
# Plugins that need cgroups or systemd fail in containers, hence proctrack/linuxproc and
# task/none. Exit status 77 means "cannot start here" (the caller skips), 1 a real failure.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)

skip() { echo "slurm-one-node: cannot start Slurm here: $*" >&2; exit 77; }

stop_pidfile() {
  local f=$1
  [ -s "$f" ] || return 0
  local pid
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

if [ "$action" = stop ]; then
  stop_pidfile "$dir/slurmd.pid"
  stop_pidfile "$dir/slurmctld.pid"
  stop_pidfile "$dir/munged.pid"
  exit 0
fi
[ "$action" = start ] || usage

[ "$(id -u)" -eq 0 ] || skip "needs root (the daemons run as root)"
for tool in munged munge slurmctld slurmd sbatch sinfo squeue; do
  command -v "$tool" >/dev/null || skip "$tool is not installed (scripts/install-deps.sh slurm)"
done

host=$(hostname)
cpus=$(nproc)
chmod 700 "$dir"
mkdir -p "$dir/state" "$dir/spool" "$dir/log"

# munge: a fresh key and a private socket.
if [ ! -s "$dir/munge.key" ]; then
  head -c 1024 /dev/urandom > "$dir/munge.key"
  chmod 400 "$dir/munge.key"
fi
munged --force --key-file="$dir/munge.key" --socket="$dir/munge.socket" --pid-file="$dir/munged.pid" \
  --log-file="$dir/log/munged.log" --seed-file="$dir/munged.seed" || skip "munged did not start (see $dir/log/munged.log)"
munge -n -S "$dir/munge.socket" | unmunge -S "$dir/munge.socket" >/dev/null || skip "munge credentials do not round-trip"

cat > "$dir/slurm.conf" <<EOF
ClusterName=iommusim
SlurmctldHost=$host
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
MaxArraySize=100001
NodeName=$host CPUs=$cpus RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF" || skip "slurmctld did not start (see $dir/log/slurmctld.log)"
slurmd -f "$SLURM_CONF" || skip "slurmd did not start (see $dir/log/slurmd.log)"
for _ in $(seq 100); do
  if sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^idle'; then
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 0.2
done
skip "the node did not become idle within 20 s (see $dir/log/)"
