#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for the tests and for demos.
#
#   bash slurm/cluster.sh up       # install (Debian packages), configure, start; idempotent
#   bash slurm/cluster.sh status   # sinfo / squeue
#   bash slurm/cluster.sh down     # stop the daemons (the state folder stays)
#
# Needs root. munge + slurmctld + slurmd on localhost, no cgroups (proctrack/linuxproc,
# task/none), no accounting database; state, logs and slurm.conf live in $VITADV_SLURM_STATE
# (default /tmp/vitadv-slurm). Point clients at it with the line `up` prints:
#   export SLURM_CONF=/tmp/vitadv-slurm/slurm.conf
set -euo pipefail

STATE=${VITADV_SLURM_STATE:-/tmp/vitadv-slurm}
CONF=$STATE/slurm.conf
HOST=$(hostname -s)
export SLURM_CONF=$CONF

die() { echo "slurm/cluster.sh: $*" >&2; exit 1; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_packages() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch \
        >/dev/null && command -v munged >/dev/null && return 0
    [ "$(id -u)" = 0 ] || die "installing SLURM needs root (apt-get install slurmctld slurmd slurm-client munge)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge \
        >/dev/null || die "apt-get install of slurmctld slurmd slurm-client munge failed"
}

start_munge() {
    if [ ! -s /etc/munge/munge.key ]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge 2>/dev/null || true
    chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge && chown munge:munge /run/munge
    if ! alive /run/munge/munged.pid; then
        runuser -u munge -- /usr/sbin/munged || die "munged did not start"
    fi
}

write_conf() {
    mkdir -p "$STATE/ctld" "$STATE/d"
    local cpus mem
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
    cat > "$CONF.tmp" <<CONF
# written by slurm/cluster.sh: a single node on localhost, for tests and demos
ClusterName=vitadv
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
JobRequeue=1
ReturnToService=2
KillWait=30
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
    mv "$CONF.tmp" "$CONF"
}

wait_ready() {
    for _ in $(seq 1 60); do
        state=$(sinfo -h -n "$HOST" -o %t 2>/dev/null || true)
        case "$state" in
            idle*|mix*|alloc*) return 0 ;;
            down*|drain*) scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 1
    done
    die "the node did not come up (see $STATE/slurmctld.log and $STATE/slurmd.log)"
}

up() {
    [ "$(id -u)" = 0 ] || die "bringing up the cluster needs root"
    install_packages
    start_munge
    if ! alive "$STATE/slurmctld.pid" || ! alive "$STATE/slurmd.pid"; then
        write_conf
        alive "$STATE/slurmctld.pid" || slurmctld -f "$CONF" || die "slurmctld did not start (see $STATE/slurmctld.log)"
        alive "$STATE/slurmd.pid" || slurmd -f "$CONF" || die "slurmd did not start (see $STATE/slurmd.log)"
    fi
    wait_ready
    echo "SLURM is up on $HOST ($(nproc) CPUs). Point clients at it with:"
    echo "export SLURM_CONF=$CONF"
}

down() {
    for d in slurmd slurmctld; do
        if alive "$STATE/$d.pid"; then kill "$(cat "$STATE/$d.pid")"; fi
    done
    for _ in $(seq 1 20); do
        alive "$STATE/slurmd.pid" || alive "$STATE/slurmctld.pid" || break
        sleep 0.5
    done
    echo "SLURM stopped (state kept in $STATE)"
}

status() {
    alive "$STATE/slurmctld.pid" || { echo "SLURM is down"; return 1; }
    sinfo && squeue
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: bash slurm/cluster.sh up|down|status" >&2; exit 2 ;;
esac
