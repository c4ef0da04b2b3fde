#!/usr/bin/env bash
# A crashed or killed rank must end the whole job within seconds with a message, never
# leave the other ranks waiting in a collective call. Starts a long 2-rank training job,
# kills one rank (SIGKILL of rank 1, then SIGSEGV of rank 0 in a second job) and checks
# that mpirun returns within 10 s with a non-zero status and names the failed process,
# and that no rank of the job survives. This relies on Open MPI's default (mpirun ends
# the job when a process dies abnormally), which is why it is tested rather than coded.
set -euo pipefail
cmera="$1"
W=$(mktemp -d)
job=""
source "$(dirname "${BASH_SOURCE[0]}")/stale_shm.inc"
trap '[ -n "$job" ] && kill -9 "$job" 2>/dev/null; sleep 1; remove_stale_shm; rm -rf "$W"' EXIT

mpirun --oversubscribe -n 2 "$cmera" generate ising1d --sites 64 --samples 2000 --corr 0.5 \
  --output "$W/d.h5" >/dev/null
cat > "$W/c.toml" <<EOF
[data]
path = "$W/d.h5"
[model]
chi = [2, 2, 2, 2]
[train]
iterations = 10000000
restarts = 1
checkpoint_every = 0
log_seconds = 0.5
[output]
dir = "$W/out"
EOF

# The pid of rank $1 among mpirun's children (Open MPI 4 forks local ranks itself).
rank_pid() {
  local pid
  for pid in $(pgrep -P "$job"); do
    if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
      echo "$pid"; return 0
    fi
  done
  return 1
}

crash() {  # crash SIGNAL RANK
  local signal=$1 rank=$2 pid t0 rc
  # A directory per crash: cmera starts no fresh run over the checkpoints of another.
  mpirun --oversubscribe -n 2 "$cmera" train "$W/c.toml" -P output.dir="$W/out-$signal-$rank" \
    > "$W/log" 2>&1 &
  job=$!
  for _ in $(seq 600); do grep -q '^iter ' "$W/log" && break; sleep 0.1; done
  grep -q '^iter ' "$W/log" || { cat "$W/log"; echo "FAIL: training did not start"; exit 1; }
  pid=$(rank_pid "$rank") || { echo "FAIL: rank $rank not found among mpirun's children"; exit 1; }
  t0=$(date +%s%N)
  kill "-$signal" "$pid"
  rc=0
  for _ in $(seq 100); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$job" 2>/dev/null; then
    echo "FAIL: SIG$signal of rank $rank: mpirun still running after 10 s"; exit 1
  fi
  wait "$job" || rc=$?
  job=""
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  [ "$rc" -ne 0 ] || { echo "FAIL: SIG$signal of rank $rank: mpirun exited with status 0"; exit 1; }
  grep -qiE "signal|exited on|terminated" "$W/log" ||
    { cat "$W/log"; echo "FAIL: SIG$signal of rank $rank: no message"; exit 1; }
  if pgrep -f -- "$W/c.toml" >/dev/null; then
    echo "FAIL: SIG$signal of rank $rank: a rank survived"; exit 1
  fi
  echo "ok  SIG$signal of rank $rank: job ended in ${ms} ms with status $rc:"
  grep -iE "signal|exited on" "$W/log" | head -n 2 | sed 's/^/      /'
}

crash KILL 1
crash SEGV 0
