#!/usr/bin/env bash
# Stop requests in every phase of `cmera train`, through real mpirun jobs at 1 and 2 ranks:
# a STOP file present at launch (stops after the statistics pass, nothing to checkpoint),
# --max-hours, SIGTERM to the rank and SIGUSR1 to mpirun during the candidate starts, and
# in the main phase SIGINT to the rank, a STOP file, SIGTERM to one of two ranks, and
# SIGTERM or SIGINT to mpirun itself. Each stop must give the documented exit status
# (85; 1 where mpirun is signalled, which turns the signal into SIGTERM for the ranks and
# exits 1 whatever they do), exactly one `stopped ...` line naming the phase and the
# signal, and a checkpoint; each run continues the last with `--restart latest`, and the
# last one's model.h5 must equal an uninterrupted run's byte for byte, except for the
# created_utc attribute (the write time, to the second) and the integrity block's CRC-32
# that covers it. Phases are recognised from the log (`start 1/2:` ends the first
# candidate start, `iter` lines are the main phase); nothing waits on a sleep.
set -euo pipefail
cmera="$1"; src="$2"
py=/usr/bin/python3
work=$(mktemp -d)
job=""
source "$src/tests/cli/stale_shm.inc"
cleanup() {
  [ -n "$job" ] && kill -9 -- "-$job" 2>/dev/null || true
  remove_stale_shm
  rm -rf "$work"
}
trap cleanup EXIT
t_start=$(date +%s)
export PMIX_MCA_pcompress_base_silence_warning=1
fail() { echo "FAIL: $*"; [ -f "$work/log" ] && cat "$work/log"; exit 1; }

mpirun --oversubscribe -n 2 "$cmera" generate ising1d --sites 16 --samples 400 --corr 0.5 \
  --seed 4 --output "$work/d.h5" >/dev/null
# Long phases of cheap iterations (N = 16: ~0.1 ms each), so that every signal lands well
# inside the phase the log says the job is in. Each main-phase stop leaves fewer iterations
# for the next continuation: with 18000, the last stop (Ctrl-C on mpirun, whose SIGTERM
# reaches the ranks later than a direct signal) once found about 1 s left, and the ranks
# finished first.
cat > "$work/c.toml" <<EOF
[data]
path = "$work/d.h5"
[model]
chi = [2, 2, 2]
[train]
iterations = 36000
restarts = 2
restart_iterations = 6000
checkpoint_every = 0
log_seconds = 0.2
[output]
dir = "$work/out"
EOF

# start NP [flags]: a job in its own session (mpirun and its ranks), output in $work/log.
start() {
  local np="$1"; shift
  : > "$work/log"  # now, so that await never reads the previous job's log
  setsid mpirun --oversubscribe -n "$np" "$cmera" train "$work/c.toml" --restart latest "$@" \
    > "$work/log" 2>&1 &
  job=$!
}
# await REGEX: until the job's log has a line matching REGEX (fails if the job ends first).
await() {
  for _ in $(seq 1200); do
    grep -qE "$1" "$work/log" && return 0
    kill -0 "$job" 2>/dev/null || fail "job ended before '$1'"
    sleep 0.05
  done
  fail "no '$1' within 60 s"
}
ranks() { pgrep -P "$job" | sort -n; }  # mpirun's children are the ranks
# finish STATUS REGEX: the job ends with STATUS and exactly one stop line, matching REGEX.
finish() {
  local rc=0
  wait "$job" || rc=$?
  job=""
  [ "$rc" -eq "$1" ] || fail "exit status $rc, expected $1"
  [ "$(grep -c '^stopped ' "$work/log")" -eq 1 ] || fail "expected one 'stopped' line"
  grep -qE "^stopped $2" "$work/log" || fail "stop line does not match '$2'"
  if grep -q "cmera: error" "$work/log"; then fail "error line"; fi
  grep '^stopped ' "$work/log"
}
# The checkpoint the stop line names exists.
checkpointed() {
  local path
  path=$(sed -n 's/^stopped .*; checkpoint \([^;]*\);.*/\1/p' "$work/log")
  [ -n "$path" ] && [ -f "$path" ] || fail "no checkpoint named or present: '$path'"
  "$cmera" info "$path" > /dev/null
}
# Byte for byte equal to the uninterrupted run's model.h5, except where a file records
# when it was written: the created_utc attribute, HDF5's object-header timestamps (32-bit
# epoch seconds; src/io/ keeps HDF5's default of tracking them), and the CRC-32 of the
# integrity block that covers both. Every differing byte must lie in the created_utc
# value, the crc32 line, or a 32-bit word that holds a time within this test's run in
# both files.
same_model() {
  $py - "$1" "$2" "$t_start" <<'PY'
import struct, sys, time, h5py
t0, t1 = int(sys.argv[3]), int(time.time()) + 1
def read(path):
    data = open(path, "rb").read()
    with h5py.File(path, "r") as f:
        stamp = f.attrs["created_utc"]
    at = data.find(stamp, 512)
    assert at > 0 and data.find(stamp, at + 1) < 0, path
    return data, range(at, at + len(stamp))
(a, stamp_a), (b, stamp_b) = read(sys.argv[1]), read(sys.argv[2])
assert len(a) == len(b) and stamp_a == stamp_b, "files differ in length or layout"
crc = range(a.index(b"crc32 "), a.index(b"\n", a.index(b"crc32 ")))
def in_time_word(data, p):
    return any(t0 <= struct.unpack_from("<I", data, o)[0] <= t1
               for o in range(max(0, p - 3), min(p, len(data) - 4) + 1))
diff = [p for p in range(len(a)) if a[p] != b[p]]
bad = [p for p in diff if p not in crc and p not in stamp_a
       and not (in_time_word(a, p) and in_time_word(b, p))]
assert not bad, f"model.h5 differs from the uninterrupted run's at bytes {bad[:10]}"
print(f"model.h5 equals the uninterrupted run's byte for byte ({len(diff)} bytes of write times)")
PY
}
no_iteration_line() { if grep -q "^iter" "$work/log"; then fail "ran iterations"; fi; }

for np in 1 2; do
  echo "== $np rank(s)"
  rm -rf "$work/out"
  start "$np"
  wait "$job" || fail "the uninterrupted run failed"
  job=""
  mv "$work/out/model.h5" "$work/ref.h5"
  rm -rf "$work/out"

  if [ "$np" = 1 ]; then
    # --max-hours 0.0001 = 0.36 s: inside the first candidate start (6000 iterations).
    start 1 --max-hours 0.0001
    finish 85 "in candidate start 1/2, iteration [0-9]+ of 6000: --max-hours 0.0001 would be exceeded"
    checkpointed
    [ -f "$work/out/checkpoint-00000000.h5" ] || fail "no candidate-phase checkpoint"
    # SIGTERM to the rank itself (what srun and Slurm deliver) in the second start.
    start 1
    await "^restart: continuing from .*checkpoint-00000000.h5 \(candidate start 1/2"
    await "^start 1/2:"
    kill -TERM $(ranks)
    finish 85 "in candidate start 2/2, iteration [0-9]+ of 6000: received SIGTERM; checkpoint"
    checkpointed
    # SIGINT to the rank in the main phase is reported as SIGINT.
    start 1
    await "^iter"
    kill -INT $(ranks)
    finish 85 "at iteration [0-9]+ of 36000: received SIGINT; checkpoint"
    checkpointed
    # SIGTERM to mpirun: the rank gets SIGTERM from mpirun a second later and checkpoints;
    # mpirun exits 1 regardless (README, Exit status).
    start 1
    await "^iter"
    kill -TERM "$job"
    finish 1 "at iteration [0-9]+ of 36000: received SIGTERM; checkpoint"
    checkpointed
  else
    # A STOP file present at launch stops the run before its first iteration.
    mkdir -p "$work/out"
    touch "$work/out/STOP"
    start 2
    finish 85 "after the statistics pass, before the first iteration: found $work/out/STOP; nothing new to checkpoint"
    no_iteration_line
    if ls "$work"/out/checkpoint-* >/dev/null 2>&1; then fail "checkpoint written"; fi
    rm "$work/out/STOP"
    # SIGUSR1 to mpirun (forwarded to the ranks) in the second candidate start.
    start 2
    await "^start 1/2:"
    kill -USR1 "$job"
    finish 85 "in candidate start 2/2, iteration [0-9]+ of 6000: received SIGUSR1; checkpoint"
    checkpointed
    # STOP in the main phase.
    start 2
    await "^restart: continuing from .*checkpoint-00000000.h5 \(candidate start 2/2"
    await "^iter"
    touch "$work/out/STOP"
    finish 85 "at iteration [0-9]+ of 36000: found $work/out/STOP; checkpoint"
    checkpointed
    rm "$work/out/STOP"
    # SIGTERM to one of the two ranks stops both after the same iteration.
    start 2
    await "^iter"
    kill -TERM $(ranks | tail -1)
    finish 85 "at iteration [0-9]+ of 36000: received SIGTERM; checkpoint"
    checkpointed
    # Ctrl-C on mpirun (SIGINT): mpirun sends the ranks SIGTERM and exits 1.
    start 2
    await "^iter"
    kill -INT "$job"
    finish 1 "at iteration [0-9]+ of 36000: received SIGTERM; checkpoint"
    checkpointed
  fi
  start "$np"
  await "^restart: continuing from"
  wait "$job" || fail "the last continuation failed"
  job=""
  grep -q "^wrote $work/out/model.h5" "$work/log" || fail "no model written"
  same_model "$work/ref.h5" "$work/out/model.h5"
done
