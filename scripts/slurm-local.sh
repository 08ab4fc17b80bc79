#!/usr/bin/env bash
# A one-node Slurm on this machine, for esr-ea's Slurm tests and for trying
# `esr-ea search --executor slurm` without a cluster.
#
#   scripts/slurm-local.sh start   # munged, slurmctld, slurmd; waits until a job runs
#   scripts/slurm-local.sh stop    # stops the daemons it started
#   scripts/slurm-local.sh status
#
# Needs root and Debian's `slurm-wlm` and `munge` packages (apt-get install -y
# slurm-wlm munge). It writes /etc/slurm/slurm.conf (where every Slurm command
# looks) marked as its own, and refuses to replace a slurm.conf it did not
# write; spool, state and logs go under $ESR_EA_SLURM_DIR (default
# /tmp/esr-ea-slurm). No accounting (slurmdbd): `sacct` does not work here.
set -euo pipefail

DIR=${ESR_EA_SLURM_DIR:-/tmp/esr-ea-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by esr-ea scripts/slurm-local.sh"

die() { echo "slurm-local: $*" >&2; exit 1; }

stop_pidfile() {
    local file=$1
    [[ -f $file ]] || return 0
    local pid
    pid=$(cat "$file")
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$file"
}

start() {
    [[ $(id -u) == 0 ]] || die "needs root (it starts munged, slurmctld and slurmd)"
    for tool in munged slurmctld slurmd sbatch; do
        command -v "$tool" >/dev/null || die "$tool not found: apt-get install -y slurm-wlm munge"
    done
    if [[ -f $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
        die "$CONF exists and was not written by this script; not replacing it"
    fi
    local host mem
    host=$(hostname -s)
    # Leave 1 GiB to the system; Slurm refuses --mem above RealMemory.
    mem=$(awk '/MemTotal/ {m=int($2/1024)-1024; print (m>512?m:512)}' /proc/meminfo)
    mkdir -p "$DIR"/{state,spool,log}
    mkdir -p /etc/slurm
    cat >"$CONF" <<CONF
$MARK
ClusterName=esrea
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
# Tests submit short jobs one after another: schedule them as they come.
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
MinJobAge=600
DefMemPerCPU=1024
KillWait=5
NodeName=$host CPUs=2 RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    # munged runs as the munge user (it refuses root's ownership of its files).
    # A munged whose socket is gone (its package reinstalled under it) cannot
    # sign anything: start a fresh one.
    if pgrep -u munge -x munged >/dev/null && [[ ! -S /run/munge/munge.socket.2 ]]; then
        pkill -u munge -x munged || true
        for _ in $(seq 50); do pgrep -u munge -x munged >/dev/null || break; sleep 0.1; done
    fi
    if ! pgrep -u munge -x munged >/dev/null; then
        mkdir -p /run/munge /var/lib/munge /var/log/munge
        chown munge:munge /run/munge /var/lib/munge /var/log/munge /etc/munge /etc/munge/munge.key
        chmod 0700 /etc/munge
        chmod 0400 /etc/munge/munge.key
        runuser -u munge -- /usr/sbin/munged
    fi
    stop_pidfile "$DIR/slurmd.pid"
    stop_pidfile "$DIR/slurmctld.pid"
    slurmctld -i
    slurmd
    # Ready when a trivial job runs to completion.
    for _ in $(seq 60); do
        if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
            if timeout 30 srun -N1 -n1 true 2>/dev/null; then
                echo "slurm-local: up on $host (conf $CONF, logs $DIR/log)"
                return 0
            fi
        fi
        sleep 0.5
    done
    die "slurm did not come up; see $DIR/log/slurmctld.log and $DIR/log/slurmd.log"
}

stop() {
    stop_pidfile "$DIR/slurmd.pid"
    stop_pidfile "$DIR/slurmctld.pid"
    echo "slurm-local: stopped (munged left running)"
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) sinfo && squeue ;;
    *) die "usage: $0 start|stop|status" ;;
esac
