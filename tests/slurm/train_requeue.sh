#!/usr/bin/env bash
# Real Slurm, end to end (CTest runs this; needs root on Debian 12 and ~2-4 minutes):
# starts a private single-node Slurm (local_slurm.sh), submits jobs/train.sbatch with a
# small config, sends the warning signal once training runs (scancel --signal=USR1
# --batch), and checks that the job checkpointed, requeued itself, resumed and finished
# with a model bitwise equal to an uninterrupted run at the same rank count. Then runs the
# scaling sweep at 1, 2 and 4 ranks and its postprocess. Every daemon it started is
# stopped by pid on exit.
# Usage: train_requeue.sh path/to/cmera source-dir
set -euo pipefail
cmera="$(realpath "$1")"; src="$(realpath "$2")"
py=/usr/bin/python3
work=$(mktemp -d /tmp/cmera-slurm.XXXXXX)
chmod 755 "$work"  # munged runs as user munge and must reach its socket folder
finish() {
  bash "$src/tests/slurm/local_slurm.sh" stop "$work/slurm" || true
  rm -rf "$work"
}
trap finish EXIT
eval "$(bash "$src/tests/slurm/local_slurm.sh" start "$work/slurm")"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export PMIX_MCA_pcompress_base_silence_warning=1 CMERA="$cmera"
cd "$work"

# Waits until command "$@" succeeds (every second), at most $1 seconds.
wait_for() {
  local limit=$1; shift
  for _ in $(seq "$limit"); do "$@" && return 0; sleep 1; done
  echo "timed out waiting for: $*"; return 1
}
job_state() { scontrol show job "$1" -o 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
# Finished in any way (an empty state is a transient scontrol failure under load, not an end).
job_done() { case "$(job_state "$1")" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) return 0 ;; esac; return 1; }

mpirun --oversubscribe -n 2 "$cmera" generate ising1d --sites 64 --samples 8000 --corr 0.5 \
  --seed 3 --output d.h5 > /dev/null
cat > c.toml <<EOF2
[data]
path = "d.h5"
[model]
chi = [2, 2, 3, 2, 2]
tied = false
[train]
iterations = 5000
restarts = 2
restart_iterations = 4
checkpoint_every = 1000
log_seconds = 2
[output]
dir = "out"
EOF2
# 5000 iterations (~13 s on an idle 2-core machine at 2.6 ms each): the warning signal,
# sent within about a second of the first checkpoint, must find training still running.
mpirun --oversubscribe -n 2 "$cmera" train c.toml -P output.dir=ref > ref.log

jid=$(sbatch --parsable -n 2 --time=10 --output="$work/job.log" "$src/jobs/train.sbatch" c.toml)
echo "submitted job $jid"
wait_for 120 grep -q "checkpoint: wrote" job.log
scancel --signal=USR1 --batch "$jid"
wait_for 240 job_done "$jid"
echo "---- job log ----"; cat job.log; echo "-----------------"
[ "$(job_state "$jid")" = COMPLETED ] || { echo "job ended $(job_state "$jid")"; exit 1; }
for expect in "received USR1" "stopped at iteration" "exited with status 85" "requeueing" \
              "requeue 1" "restart: continuing from" "training finished"; do
  grep -q "$expect" job.log || { echo "job log lacks: $expect"; exit 1; }
done
$py - ref/model.h5 out/model.h5 <<'PY'
import sys, h5py
def datasets(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[...]) if isinstance(o, h5py.Dataset) else None)
    return out
a, b = datasets(sys.argv[1]), datasets(sys.argv[2])
assert a.keys() == b.keys()
bad = [k for k in a if a[k].tobytes() != b[k].tobytes()]
assert not bad, f"requeued job differs from the uninterrupted run: {bad}"
print("requeued Slurm job ends bitwise equal to the uninterrupted run")
PY

# Scaling sweep at 1, 2 and 4 ranks (the node advertises 4 CPUs on 2 cores).
ids=$(bash "$src/jobs/scaling.sh" --sites 64 --iterations 10 --samples 4000 --out scaling 1 2 4)
for id in $ids; do wait_for 240 job_done "$id"; done
for log in scaling/*.log; do  # a job that failed shows its own log, not only the table's gap
  grep -q 's/iter' "$log" || { echo "---- $log (no timing line) ----"; cat "$log"; }
done
$py "$src/postprocess/scaling.py" scaling
test "$(grep -c '^| strong\|^| weak' scaling/scaling.md)" -eq 6
test -s scaling/scaling.csv && test -s scaling/scaling.png
echo "slurm test OK"
