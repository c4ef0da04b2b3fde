#!/usr/bin/env bash
# kill -9 of a training job at random moments and inside a checkpoint write, then restart
# with `--restart latest` until done: the result must equal an uninterrupted run bitwise
# (every dataset of model.h5, and `cmera eval --json`), and after every kill each
# checkpoint-*.h5 present must be complete and valid, and none written before may be
# missing beyond what output.keep_checkpoints prunes. The test-only delay
# CMERA_TEST_CHECKPOINT_DELAY holds each write open (temporary complete, not renamed), so
# random kills land in that window often and one kill lands there deterministically.
set -euo pipefail
cmera="$1"; src="$2"
py=/usr/bin/python3
work=$(mktemp -d)
job=""
source "$src/tests/cli/stale_shm.inc"
cleanup() {
  [ -n "$job" ] && kill -9 -- "-$job" 2>/dev/null || true
  sleep 1  # let the killed ranks be reaped before their segments are removed
  remove_stale_shm
  rm -rf "$work"
}
trap cleanup EXIT
run() { mpirun --oversubscribe -n 2 "$cmera" "$@"; }

run generate ising1d --sites 64 --samples 8000 --corr 0.5 --seed 3 --output "$work/d.h5" >/dev/null
cat > "$work/c.toml" <<EOF
[data]
path = "$work/d.h5"
[model]
chi = [2, 2, 3, 2, 2]
tied = false
[train]
iterations = 300
restarts = 2
restart_iterations = 4
checkpoint_every = 3
[output]
dir = "$work/out"
keep_checkpoints = 2
EOF

run train "$work/c.toml" -P output.dir="$work/ref" > "$work/ref.log"

# Starts the job in its own process group (so kill -9 reaches mpirun and every rank).
start() {
  setsid mpirun --oversubscribe -n 2 "$cmera" train "$work/c.toml" --restart latest \
    >> "$work/job.log" 2>&1 &
  job=$!
}
kill_job() {
  kill -9 -- "-$job" 2>/dev/null || true
  wait "$job" 2>/dev/null || true
  job=""
  # Ranks are reaped asynchronously; wait until none of this job is left.
  for _ in $(seq 100); do pgrep -f -- "$work/c.toml" >/dev/null || return 0; sleep 0.1; done
  echo "ranks survived kill -9"; exit 1
}
# Every checkpoint present is complete (all datasets readable, iteration = history length).
check_checkpoints() {
  $py - "$work/out" <<'PY'
import glob, sys, h5py
files = sorted(glob.glob(sys.argv[1] + "/checkpoint-*.h5"))
for f in files:
    with h5py.File(f, "r") as h:
        assert h.attrs["cmera_kind"] == b"checkpoint", f  # fixed-length strings read as bytes
        n = int(h.attrs["iteration"])
        assert h["history/objective"].shape == (n,), f
        h.visititems(lambda name, o: o[...] if isinstance(o, h5py.Dataset) else None)
print("checkpoints intact:", [f.rsplit("-", 1)[1] for f in files])
PY
  for f in "$work"/out/checkpoint-*.h5; do [ -e "$f" ] && "$cmera" info "$f" > /dev/null; done
  return 0
}
newest() { { ls "$work"/out/checkpoint-*.h5 2>/dev/null || true; } | tail -1 | sed 's/.*checkpoint-0*\([0-9]*\)\.h5/\1/'; }

# Deterministic, first (so the job cannot have finished yet): kill while a write holds
# its temporary open.
export CMERA_TEST_CHECKPOINT_DELAY=60
start
for _ in $(seq 300); do ls "$work"/out/*.tmp.* >/dev/null 2>&1 && break; sleep 0.1; done
ls "$work"/out/*.tmp.* >/dev/null 2>&1 || { echo "no checkpoint write observed"; cat "$work/job.log"; exit 1; }
before=$(newest)
kill_job
echo "killed inside a checkpoint write; left: $(ls "$work/out" | tr '\n' ' ')"
check_checkpoints
[ "$(newest)" = "$before" ] || { echo "newest checkpoint changed by the killed write"; exit 1; }

# Random moments: the delay makes each checkpoint write last 0.2 s, so roughly half of
# the kills hit a write.
export CMERA_TEST_CHECKPOINT_DELAY=0.2
seen=$(newest); seen=${seen:-0}
for k in 1 2 3 4; do
  # The random moment counts from the end of the statistics pass, so that a slow start-up
  # (a loaded machine, the sanitizer build) cannot make every kill land before training.
  passes=$(grep -c '^statistics pass' "$work/job.log" || true)
  start
  for _ in $(seq 600); do
    [ "$(grep -c '^statistics pass' "$work/job.log" || true)" -gt "$passes" ] && break; sleep 0.1
  done
  sleep "$($py -c "import random; print(round(random.uniform(0.3, 2.0), 2))")"
  kill_job
  echo "kill $k: newest checkpoint $(newest)"
  check_checkpoints
  now=$(newest); now=${now:-0}
  [ "$now" -ge "$seen" ] || { echo "checkpoint lost: had $seen, now $now"; exit 1; }
  seen=$now
done

unset CMERA_TEST_CHECKPOINT_DELAY
run train "$work/c.toml" --restart latest > "$work/final.log"
grep -q "restart: continuing from" "$work/final.log"
if grep -q "refused" "$work/final.log"; then cat "$work/final.log"; exit 1; fi
if ls "$work"/out/*.tmp.* >/dev/null 2>&1; then echo "temporary file not cleaned up"; exit 1; fi

run eval "$work/ref/model.h5" --data "$work/d.h5" --json | sed 's#"model": .*##' > "$work/ref.json"
run eval "$work/out/model.h5" --data "$work/d.h5" --json | sed 's#"model": .*##' > "$work/out.json"
cmp "$work/ref.json" "$work/out.json"
$py - "$work/ref/model.h5" "$work/out/model.h5" <<'PY'
import sys, h5py, numpy as np
def datasets(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[...]) if isinstance(o, h5py.Dataset) else None)
    return out
a, b = datasets(sys.argv[1]), datasets(sys.argv[2])
assert a.keys() == b.keys(), (a.keys(), b.keys())
bad = [k for k in a if a[k].tobytes() != b[k].tobytes()]
assert not bad, f"not bitwise equal: {bad}"
assert a["history/objective"].shape == (300,)
print("restarted run is bitwise identical to the uninterrupted one")
PY
