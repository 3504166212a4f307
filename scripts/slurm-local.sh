#!/usr/bin/env bash
# A one-node SLURM on this Debian machine, to try `seilab campaign run --backend slurm` on a
# workstation (and for the tests in tests/campaign/test_slurm_real.py).  Run as root.
#
#   scripts/slurm-local.sh start    install slurm-wlm + munge if missing, write the config, start
#                                   munged, slurmctld and slurmd; wait until the node is idle
#   scripts/slurm-local.sh status   daemons, node and queue
#   scripts/slurm-local.sh stop     stop the daemons this script started (pid files)
#
# Idempotent: `start` when everything runs is a no-op; `stop` when nothing runs is a no-op.
# The node has the machine's CPUs (nproc) and ~90 % of its memory, in partition `debug`.
# Jobs run as the submitting user (root here).  The configuration is written only where none
# exists or where this script wrote it (marker line); a site's own slurm.conf is never touched.
# Environment: SLURM_LOCAL_PARTITION (default debug), SLURM_LOCAL_MEM_MB (node memory).
set -euo pipefail

MARK="# written by seilab scripts/slurm-local.sh"
PARTITION=${SLURM_LOCAL_PARTITION:-debug}
LOG_DIR=/var/log/slurm
SPOOL=/var/spool
RUN=/run
CTLD_PID=$RUN/slurmctld.pid
SLURMD_PID=$RUN/slurmd.pid
MUNGE_PID=$RUN/munge/munged.pid

say() { printf 'slurm-local: %s\n' "$*"; }
die() { printf 'slurm-local: error: %s\n' "$*" >&2; exit 1; }

alive() { # alive PIDFILE: the pid in the file is a live process
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

conf_dir() {
  # Debian >= 11 reads /etc/slurm; Debian 10 and older used /etc/slurm-llnl.
  if [ -d /etc/slurm-llnl ] && [ ! -d /etc/slurm ]; then echo /etc/slurm-llnl; else echo /etc/slurm; fi
}

check_host() {
  [ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts system daemons)"
  command -v apt-get >/dev/null || die "needs a Debian-like system with apt-get"
}

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
    && command -v sbatch >/dev/null && command -v munged >/dev/null; then
    return
  fi
  say "installing slurm-wlm and munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null
  say "installed $(slurmctld -V)"
}

write_if_changed() { # write_if_changed FILE: stdin -> FILE when different; 0 if changed
  local new
  new=$(cat)
  if [ -f "$1" ] && [ "$(cat "$1")" = "$new" ]; then return 1; fi
  if [ -f "$1" ] && ! grep -qF "$MARK" "$1"; then
    die "$1 exists and was not written by this script; not touching it (move it aside to use this script)"
  fi
  printf '%s\n' "$new" >"$1"
  return 0
}

configure() { # writes slurm.conf and cgroup.conf; sets CHANGED=1 when either changed
  local dir host cpus mem
  dir=$(conf_dir)
  mkdir -p "$dir" "$LOG_DIR" "$SPOOL/slurmctld" "$SPOOL/slurmd"
  host=$(hostname -s)
  cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc) # nproc obeys OMP_NUM_THREADS
  mem=${SLURM_LOCAL_MEM_MB:-$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)}
  CHANGED=0
  write_if_changed "$dir/slurm.conf" <<EOF && CHANGED=1 || true
$MARK
# One-node SLURM for trying seilab's SLURM backend; see docs/campaigns.md.
ClusterName=seilab-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$SPOOL/slurmctld
SlurmdSpoolDir=$SPOOL/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# every finished job (id, name, state, times) is appended here: what sacct would show
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
MinJobAge=600
KillWait=5
# a loaded machine may need more than the default 60 s to reap a cancelled job's processes;
# past this SLURM drains the node and every later job waits
UnkillableStepTimeout=180
SchedulerParameters=sched_interval=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  write_if_changed "$dir/cgroup.conf" <<EOF && CHANGED=1 || true
$MARK
CgroupPlugin=cgroup/v1
EOF
}

node_state() { sinfo -h -N -o '%T' 2>/dev/null | head -n 1; }

wait_idle() {
  local i state
  for i in $(seq 1 60); do
    state=$(node_state)
    case "$state" in
      idle* | mix* | alloc* | allocated* | completing*) return 0 ;;
      down* | drain* | fail*)
        scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 1
  done
  die "node not ready after 60 s (state '${state:-none}'); see $LOG_DIR/slurmctld.log and slurmd.log"
}

start() {
  check_host
  install
  configure
  if [ "$CHANGED" = 1 ] && { alive "$CTLD_PID" || alive "$SLURMD_PID"; }; then
    say "configuration changed: restarting the SLURM daemons"
    stop_slurm
  fi
  local started=0
  if ! alive "$MUNGE_PID"; then
    mkdir -p "$RUN/munge"
    chown munge:munge "$RUN/munge" 2>/dev/null || true
    [ -s /etc/munge/munge.key ] || { say "creating /etc/munge/munge.key"; mungekey -c -f; }
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    chmod 600 /etc/munge/munge.key
    runuser -u munge -- munged --pid-file="$MUNGE_PID" 2>/dev/null || munged --force --pid-file="$MUNGE_PID"
    started=1
  fi
  if ! alive "$CTLD_PID"; then
    slurmctld
    started=1
  fi
  if ! alive "$SLURMD_PID"; then
    slurmd
    started=1
  fi
  wait_idle
  if [ "$started" = 1 ]; then say "started"; else say "already running"; fi
  status
}

stop_one() { # stop_one NAME PIDFILE
  alive "$2" || return 0
  local pid i
  pid=$(cat "$2")
  kill "$pid"
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { say "stopped $1 (pid $pid)"; return 0; }
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  say "killed $1 (pid $pid)"
}

stop_slurm() {
  stop_one slurmd "$SLURMD_PID"
  stop_one slurmctld "$CTLD_PID"
}

stop() {
  [ "$(id -u)" = 0 ] || die "run as root"
  # jobs still running would be lost silently: cancel them first so their state is recorded
  if alive "$CTLD_PID" && [ -n "$(squeue -h -o %i 2>/dev/null)" ]; then
    say "cancelling $(squeue -h -o %i | wc -l) job(s)"
    scancel --full $(squeue -h -o %i) 2>/dev/null || true
    sleep 1
  fi
  stop_slurm
  stop_one munged "$MUNGE_PID"
  say "stopped"
}

status() {
  local n
  for n in "munged:$MUNGE_PID" "slurmctld:$CTLD_PID" "slurmd:$SLURMD_PID"; do
    if alive "${n#*:}"; then say "${n%%:*} running (pid $(cat "${n#*:}"))"
    else say "${n%%:*} not running"; fi
  done
  if alive "$CTLD_PID"; then
    sinfo -o '%P %a %D %T %c %m %N' 2>/dev/null | sed 's/^/  /'
    squeue -o '%i %j %u %T %M %l %C %m' 2>/dev/null | sed 's/^/  /'
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  restart) stop; start ;;
  *) echo "usage: $0 start|status|stop|restart" >&2; exit 2 ;;
esac
