#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, to run deploy/slurm/build-bank.sbatch for real (CI and by hand):
# installs Debian's slurm-wlm and munge when missing, writes a munge key and a slurm.conf for this host (its
# hostname, CPUs and memory as `slurmd -C` reports them), starts munged, slurmctld and slurmd, and waits until
# the node is idle. Needs root (or sudo). No systemd needed: the daemons are started directly.
#
#   bash tools/slurm_localhost.sh start    # install if needed, configure, start (default)
#   bash tools/slurm_localhost.sh stop     # stop the daemons this script started (by their pid files)
#
# It overwrites /etc/slurm/slurm.conf: meant for a CI runner or a scratch machine, not a host with a cluster.
# Accounting (slurmdbd) is not set up, so `sacct` has nothing to show; squeue and `scontrol show job` do.
set -euo pipefail
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
RUN=/run/ragseg-slurm
action=${1:-start}

# True while process $1 runs (a zombie does not count: in a container nobody may reap it).
running() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }

stop() {
    for name in slurmd slurmctld munged; do
        pidfile=$RUN/$name.pid
        [ $name = munged ] && pidfile=/run/munge/munged.pid  # munged (user munge) writes its own
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if $SUDO kill "$pid" 2>/dev/null; then
            # Wait for it to go: a new daemon cannot take its socket or port before.
            for _ in $(seq 100); do running "$pid" || break; sleep 0.1; done
            echo "stopped $name"
        fi
        $SUDO rm -f "$pidfile"
    done
}

if [ "$action" = stop ]; then stop; exit 0; fi
[ "$action" = start ] || { echo "usage: $0 [start|stop]" >&2; exit 2; }

missing=()
for p in slurm-wlm munge; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

stop >/dev/null
$SUDO mkdir -p "$RUN" /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm /etc/slurm /run/munge
# munge: one key shared by every daemon of the cluster (here one machine); munged refuses to run as root.
if [ ! -s /etc/munge/munge.key ]; then
    $SUDO dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
$SUDO chown munge:munge /etc/munge/munge.key /run/munge
$SUDO chmod 400 /etc/munge/munge.key
$SUDO runuser -u munge -- /usr/sbin/munged
munge -n | unmunge >/dev/null || { echo "munge does not work" >&2; exit 1; }

# The node line as slurmd measures this machine; memory a little below what it reports, so jobs fit.
host=$(hostname -s)
node=$(slurmd -C | head -1)
cpus=$(sed -E 's/.* CPUs=([0-9]+).*/\1/' <<<"$node")
memory=$(sed -E 's/.* RealMemory=([0-9]+).*/\1/' <<<"$node")
memory=$((memory * 9 / 10))
$SUDO tee /etc/slurm/slurm.conf >/dev/null <<EOF
# Written by tools/slurm_localhost.sh: a one-node cluster on $host.
ClusterName=ragseg-local
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
# No cgroups in containers and CI runners: plain process tracking, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
$SUDO /usr/sbin/slurmctld -i
$SUDO /usr/sbin/slurmd
for _ in $(seq 60); do
    state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
    case $state in idle | mixed | allocated) echo "slurm on $host: node $state, $cpus CPUs, $memory MB"; exit 0 ;; esac
    sleep 1
done
echo "the node did not come up (state: ${state:-unknown}); see /var/log/slurm/" >&2
exit 1
