#!/usr/bin/env bash
# Brings up a single-node Slurm cluster on localhost WITH accounting (slurmdbd + a private
# MariaDB), all state in one private directory, without systemd (docs/slurm.md).
#
#   eval "$(.ci/slurm-up.sh)"      # then sbatch/sinfo/sacct and submitit work; teardown:
#   .ci/slurm-down.sh              # stops what this script started, deletes the directory
#
# stdout carries ONLY `export NAME=value` lines; every log line goes to stderr. Reuses the
# directory in $NOISYBENCH_SLURM_DIR when set (each daemon is skipped if its pid is alive).
set -euo pipefail
log() { echo "slurm-up: $*" >&2; }
die() {
  log "ERROR: $*"
  for f in "${SLURM_DIR:-/nonexistent}"/log/*; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
  if [ -n "${SLURM_DIR:-}" ] && [ -e "$SLURM_DIR/.noisybench-slurm" ]; then  # stop what we started
    "$(dirname "$0")/slurm-down.sh" "$SLURM_DIR" || true
  fi
  exit 1
}
[ "$(id -u)" = 0 ] || die "run as root (the test cluster runs its daemons and jobs as root)"
for bin in slurmctld slurmd slurmdbd sbatch sacctmgr munged mariadbd mariadb-install-db mariadb; do
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || die "$bin not found; run .ci/install-slurm.sh first"
done
export PATH="$PATH:/usr/sbin:/sbin"
t0=$(date +%s%N)

SLURM_DIR="${NOISYBENCH_SLURM_DIR:-}"
if [ -z "$SLURM_DIR" ]; then SLURM_DIR=$(mktemp -d /tmp/noisybench-slurm.XXXXXX); fi
mkdir -p "$SLURM_DIR"/{log,state,spool,run}
touch "$SLURM_DIR/.noisybench-slurm"
export SLURM_CONF="$SLURM_DIR/slurm.conf"

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local end=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || die "timed out after ${limit}s waiting for $what"
    sleep 0.2
  done
}

# 1. munge: reuse a running munged; remember whether we started it (teardown stops only ours).
if [ ! -s /etc/munge/munge.key ]; then mungekey --create --keyfile=/etc/munge/munge.key --force >&2; fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge
if ! alive /run/munge/munged.pid; then
  runuser -u munge -- /usr/sbin/munged >&2 || die "munged did not start"
  touch "$SLURM_DIR/run/munged.started"
  log "started munged"
fi
wait_for 10 "munge" bash -c 'munge -n | unmunge'

# 2. accounting: private MariaDB + slurmdbd.
DB_PID="$SLURM_DIR/run/mariadb.pid"; DB_SOCK="$SLURM_DIR/run/mysql.sock"
if ! alive "$DB_PID"; then
  if [ ! -d "$SLURM_DIR/mysql/mysql" ]; then
    mariadb-install-db --user=root --datadir="$SLURM_DIR/mysql" --auth-root-authentication-method=normal \
      --skip-test-db >"$SLURM_DIR/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed"
  fi
  nohup mariadbd --user=root --datadir="$SLURM_DIR/mysql" --socket="$DB_SOCK" --port=3307 \
    --bind-address=127.0.0.1 --pid-file="$DB_PID" --skip-log-bin --innodb-buffer-pool-size=64M \
    --innodb-lock-wait-timeout=900 --log-error="$SLURM_DIR/log/mariadb.log" </dev/null >/dev/null 2>&1 &
  log "started mariadbd"
fi
wait_for 30 "MariaDB" mariadb --socket="$DB_SOCK" -uroot -e 'select 1'
if [ ! -s "$SLURM_DIR/run/dbpass" ]; then
  head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$SLURM_DIR/run/dbpass"
  chmod 600 "$SLURM_DIR/run/dbpass"
fi
DB_PASS=$(cat "$SLURM_DIR/run/dbpass")
mariadb --socket="$DB_SOCK" -uroot -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
  ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;" || die "could not create the slurm DB user"

cat >"$SLURM_DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=$SLURM_DIR/log/slurmdbd.log
PidFile=$SLURM_DIR/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3307
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
chmod 600 "$SLURM_DIR/slurmdbd.conf"

# 3. slurm.conf: the node line comes from `slurmd -C` (never typed: too many CPUs drain the node).
node_line=$(slurmd -C | head -n 1 | sed -E 's/^NodeName=[^ ]+/NodeName=localhost/')
cat >"$SLURM_CONF" <<EOF
ClusterName=localcluster
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool/slurmd-%n
SlurmctldPidFile=$SLURM_DIR/run/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/run/slurmd.pid
SlurmctldLogFile=$SLURM_DIR/log/slurmctld.log
SlurmdLogFile=$SLURM_DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
MpiDefault=none
JobCompType=jobcomp/none
# A requeued job may start again only after the credential lifetime (default 120 s); 20 s keeps
# the preemption test short.
AuthInfo=cred_expire=20
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

alive "$SLURM_DIR/run/slurmdbd.pid" || { slurmdbd >&2 || die "slurmdbd did not start"; log "started slurmdbd"; }
wait_for 30 "slurmdbd" sacctmgr -n list cluster
alive "$SLURM_DIR/run/slurmctld.pid" || { slurmctld >&2 || die "slurmctld did not start"; log "started slurmctld"; }
wait_for 30 "slurmctld" scontrol ping
alive "$SLURM_DIR/run/slurmd.pid" || { slurmd -N localhost >&2 || die "slurmd did not start"; log "started slurmd"; }
wait_for 30 "the node to be idle" bash -c '[ "$(sinfo -h -n localhost -o %T)" = idle ] || \
  [ "$(sinfo -h -n localhost -o %T)" = mixed ] || [ "$(sinfo -h -n localhost -o %T)" = allocated ]'
wait_for 30 "cluster registration in slurmdbd" \
  bash -c 'sacctmgr -n -P list cluster format=cluster,controlport | grep -qx "localcluster|6817"'

log "cluster up in $(( ($(date +%s%N) - t0) / 1000000 )) ms; state in $SLURM_DIR"
echo "export SLURM_CONF=$SLURM_CONF"
echo "export NOISYBENCH_SLURM_DIR=$SLURM_DIR"
