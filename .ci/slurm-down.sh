#!/usr/bin/env bash
# Tears down the cluster .ci/slurm-up.sh started: cancels jobs, stops daemons by pid file in
# reverse order (munged only if slurm-up started it), deletes the private directory.
#   .ci/slurm-down.sh [DIR]        # DIR defaults to $NOISYBENCH_SLURM_DIR
set -uo pipefail
log() { echo "slurm-down: $*" >&2; }
SLURM_DIR="${1:-${NOISYBENCH_SLURM_DIR:-}}"
if [ -z "$SLURM_DIR" ] || [ ! -e "$SLURM_DIR/.noisybench-slurm" ]; then
  log "no cluster directory (pass DIR or set NOISYBENCH_SLURM_DIR); nothing to do"
  exit 0
fi
export SLURM_CONF="$SLURM_DIR/slurm.conf" PATH="$PATH:/usr/sbin:/sbin"
t0=$(date +%s%N)
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if alive "$SLURM_DIR/run/slurmctld.pid"; then
  timeout 10 scancel --user="$(id -un)" 2>/dev/null || true
fi
stop() {  # stop PIDFILE NAME: SIGTERM, wait up to 20 s, SIGKILL only if still alive
  local pidfile=$1 name=$2 pid
  alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then log "$name ($pid) ignored SIGTERM; SIGKILL"; kill -KILL "$pid" 2>/dev/null; fi
  rm -f "$pidfile"
  log "stopped $name"
}
stop "$SLURM_DIR/run/slurmd.pid" slurmd
stop "$SLURM_DIR/run/slurmctld.pid" slurmctld
stop "$SLURM_DIR/run/slurmdbd.pid" slurmdbd
stop "$SLURM_DIR/run/mariadb.pid" mariadbd
if [ -e "$SLURM_DIR/run/munged.started" ]; then stop /run/munge/munged.pid munged; fi
rm -rf "$SLURM_DIR"
log "done in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
