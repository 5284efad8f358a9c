#!/usr/bin/env bash
# Installs a single-node Slurm with accounting (slurmdbd + MariaDB) and munge from Debian's
# packages. Idempotent: exits at once when every binary is already there. Starts no service
# (on Debian 12 CI there is no systemd; .ci/slurm-up.sh starts the daemons itself).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

need=(sbatch slurmctld slurmd slurmdbd munged mariadbd mariadb-install-db sacct)
missing=0
for bin in "${need[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || missing=1
done
if [ "$missing" = 0 ] && compgen -G "/usr/lib/*/slurm-wlm/accounting_storage_mysql.so" >/dev/null; then
  echo "install-slurm: Slurm, slurmdbd, MariaDB and munge already installed" >&2
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
start=$(date +%s)
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq --no-install-recommends \
  slurmctld slurmd slurm-client slurmdbd slurm-wlm-mysql-plugin munge mariadb-server mariadb-client >&2
echo "install-slurm: installed in $(( $(date +%s) - start )) s" >&2
