#!/usr/bin/env bash
# A private single-node Slurm (munged, slurmctld, slurmd) for tests: everything lives under
# one folder (no systemd, no cgroups: proctrack/linuxproc, task/none; the node advertises
# 4 CPUs through config_overrides), daemons are stopped by the pids recorded at start
# (never by name: other Slurms or zombies may be around), then whatever still carries this
# instance's SLURM_CONF (steps and jobs a stopped test left). Job ids restart at 1 in every
# instance, so the PMIx plugin's per-step folders (spmix_appdir_<uid>_<job>.<step>, which it
# does not always remove) go under DIR too: a folder left in /tmp by an earlier instance
# would otherwise make the same step of a later one fail to launch ("File exists").
# Usage: local_slurm.sh start DIR   (prints `export SLURM_CONF=...` for the caller to eval)
#        local_slurm.sh stop DIR
# Installs slurm-wlm and munge when missing (Debian 12, as root); ~50 s the first time.
set -euo pipefail
cmd="$1"; dir="$2"

# Processes of this instance besides its daemons: slurmstepd (started by slurmd, with its
# environment) and a job's script, srun and ranks (with the submitter's) all carry
# SLURM_CONF=$dir/slurm.conf. A test that ends mid-job (a failed check, one of its own
# time limits) would leave them running after the daemons are gone. The caller and its
# ancestors carry it too and are spared.
instance_processes() {
  local spare=" " p=$BASHPID pid
  while [ "$p" -gt 1 ]; do spare+="$p "; p=$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null || echo 1); done
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    case "$spare" in *" $pid "*) continue ;; esac
    { tr '\0' '\n' < "/proc/$pid/environ"; } 2>/dev/null |
      grep -qxF "SLURM_CONF=$dir/slurm.conf" && echo "$pid"
  done
  return 0
}

stop() {
  for name in slurmd slurmctld munged; do
    [ -s "$dir/$name.pid" ] || continue
    pid=$(cat "$dir/$name.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/$name.pid"
  done
  local left
  left=$(instance_processes)
  [ -z "$left" ] && return 0
  echo "local_slurm: stopping what this instance's jobs left running: $(echo $left)" >&2
  kill $left 2>/dev/null || true
  sleep 2
  left=$(instance_processes)
  [ -z "$left" ] || kill -9 $left 2>/dev/null || true
}

start() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    echo "local_slurm: installing slurm-wlm and munge" >&2
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge >&2
  fi
  mkdir -p "$dir"/{munge,state,spool,log,pmix}
  chown munge:munge "$dir/munge"; chmod 755 "$dir/munge"
  [ -s "$dir/munge/munge.key" ] || { dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none; }
  chown munge:munge "$dir/munge/munge.key"; chmod 400 "$dir/munge/munge.key"
  runuser -u munge -- munged --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
    --seed-file="$dir/munge/munged.seed"
  for _ in $(seq 50); do [ -s "$dir/munge/munged.pid" ] && break; sleep 0.1; done
  cp "$dir/munge/munged.pid" "$dir/munged.pid"

  host=$(hostname -s)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
  cat > "$dir/slurm.conf" <<CONF
ClusterName=cmeratest
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=5
SlurmUser=root
SlurmctldPort=${CMERA_SLURM_PORT:-6817}
SlurmdPort=$(( ${CMERA_SLURM_PORT:-6817} + 1 ))
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
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=bf_interval=2,sched_interval=2
MpiDefault=pmix
ReturnToService=2
KillWait=5
MinJobAge=600
SlurmdParameters=config_overrides
NodeName=$host NodeAddr=127.0.0.1 CPUs=4 Sockets=1 CoresPerSocket=4 ThreadsPerCore=1 RealMemory=$mem
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  echo "PMIxCliTmpDirBase=$dir/pmix" > "$dir/mpi.conf"
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -c
  for _ in $(seq 100); do [ -s "$dir/slurmctld.pid" ] && break; sleep 0.1; done
  slurmd
  for _ in $(seq 100); do
    [ "$(sinfo -h -o %T 2>/dev/null)" = "idle" ] && { echo "export SLURM_CONF=$dir/slurm.conf"; return 0; }
    sleep 0.2
  done
  echo "local_slurm: node did not become idle; see $dir/log" >&2
  sinfo >&2 || true
  return 1
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
