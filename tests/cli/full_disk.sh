#!/usr/bin/env bash
# A real full filesystem: a small tmpfs that this test mounts (root with CAP_SYS_ADMIN;
# otherwise it says so and exits 77, which CTest reports as skipped). At 1, 2 and 3 ranks:
# - train writes checkpoints onto it until one no longer fits: the job must end within
#   the timeout with exactly one `cmera: error:` line naming the file and the full disk,
#   exit 74, no crash at exit, no temporary left, and the checkpoints and model.h5 already
#   there byte-identical and valid; after the filesystem grows, `--restart latest`
#   continues and ends with the tables of an uninterrupted run, bitwise;
# - sample and generate onto the full filesystem fail the same way, leaving no file, and
#   the user's file already there unchanged;
# - on the same filesystem made read-only, train and sample are refused before any work.
# Usage: full_disk.sh CMERA SOURCE_DIR
set -uo pipefail
cmera="$1"; src="$2"
py=/usr/bin/python3
W=$(mktemp -d)
mnt="$W/disk"
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=256k tmpfs "$mnt" 2>/dev/null; then
  rm -rf "$W"
  echo "SKIP: cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN); full-disk faults not tested"
  exit 77
fi
trap 'umount "$mnt" 2>/dev/null; rm -rf "$W"' EXIT
export OMP_NUM_THREADS=1
failures=0
fail() { echo "FAIL np $np: $*"; failures=$((failures + 1)); }
# Runs cmera, expecting it to fail on the full disk: one error line naming `fragment`,
# status 74, no signal, abort or hang.
expect_full() {
  local fragment="$1"; shift
  timeout 120 mpirun --oversubscribe -n "$np" "$cmera" "$@" > "$W/out.log" 2> "$W/err.log"
  local rc=$? line
  line=$(grep '^cmera: error: ' "$W/err.log")
  [ "$rc" -eq 74 ] || fail "$* exited $rc, expected 74"
  [ "$(grep -c '^cmera: error: ' "$W/err.log")" -eq 1 ] || fail "$*: not exactly one error line"
  [[ "$line" == *"$fragment"*"No space left on device"* ]] || fail "$*: message '$line'"
  ! grep -qE 'MPI_ABORT|internal error|Signal:|Segmentation|HDF5-DIAG' "$W/err.log" ||
    fail "$*: abort, crash or HDF5 trace"
  ! ls "$mnt"/*.tmp.* >/dev/null 2>&1 || fail "$*: temporary file left behind"
  [ "$rc" -eq 74 ] || sed 's/^/    /' "$W/err.log" | head -n 20
}
tables() {  # every table of a model or checkpoint, as one hash
  $py -c 'import sys, h5py, hashlib
h = hashlib.sha256()
with h5py.File(sys.argv[1], "r") as f:
    f["model"].visititems(lambda n, o: h.update(n.encode() + o[()].tobytes()) if isinstance(o, h5py.Dataset) else None)
print(h.hexdigest())' "$1"
}

mpirun --oversubscribe -n 2 "$cmera" generate ising1d --sites 64 --samples 2000 --corr 0.6 --seed 4 \
  --output "$W/d.h5" > /dev/null || { echo "fixture: generate failed"; exit 1; }
# Untied chi = 2 on 64 sites: a checkpoint takes 108 KB of the 256 KB, so the third one
# (two are kept) does not fit.
cat > "$W/c.toml" <<TOML
[data]
path = "$W/d.h5"
[model]
chi = [2, 2, 2, 2]
tied = false
[train]
iterations = 24
restarts = 1
restart_iterations = 0
checkpoint_every = 4
[output]
dir = "$mnt/run"
keep_checkpoints = 2
TOML

for np in 1 2 3; do
  [ "$np" -le "${CMERA_MAX_RANKS:-99}" ] || continue  # the sanitizer suite stops at 2
  timeout 120 mpirun --oversubscribe -n "$np" "$cmera" train "$W/c.toml" -P output.dir="$W/ref$np" \
    > /dev/null 2>&1 || fail "reference run failed"
  # A model.h5 of the same config already there (an earlier run's) must survive too.
  rm -rf "$mnt/run" && mkdir "$mnt/run" && cp "$W/ref$np/model.h5" "$mnt/run/model.h5"
  expect_full "checkpoint-" train "$W/c.toml"
  ls "$mnt"/run/checkpoint-*.h5 > /dev/null 2>&1 || fail "no checkpoint survived"
  cmp -s "$mnt/run/model.h5" "$W/ref$np/model.h5" || fail "the existing model.h5 changed"
  for f in "$mnt"/run/*.h5; do "$cmera" info "$f" > /dev/null 2>&1 || fail "$f does not verify"; done
  mount -o remount,size=4m "$mnt"
  timeout 120 mpirun --oversubscribe -n "$np" "$cmera" train "$W/c.toml" --restart latest > "$W/restart.log" 2>&1 ||
    { fail "restart after the disk grew: status $?"; sed 's/^/    /' "$W/restart.log" | tail -n 5; }
  [ "$(tables "$mnt/run/model.h5")" = "$(tables "$W/ref$np/model.h5")" ] ||
    fail "the continued run's tables differ from the uninterrupted run's"
  rm -rf "$mnt/run"

  # Datasets: 20000 x 64 bytes cannot fit in the 256 KB left.
  mount -o remount,size=256k "$mnt"
  echo "the user's notes" > "$mnt/notes.txt"
  expect_full "samples.h5" sample "$W/ref$np/model.h5" --count 20000 --output "$mnt/samples.h5"
  expect_full "big.h5" generate ising1d --sites 64 --samples 20000 --corr 0.5 --output "$mnt/big.h5"
  [ ! -e "$mnt/samples.h5" ] && [ ! -e "$mnt/big.h5" ] || fail "a partial dataset was left"
  [ "$(cat "$mnt/notes.txt")" = "the user's notes" ] || fail "the user's file changed"
  [ "$failures" -eq 0 ] && echo "ok  np $np: checkpoint, sample and generate on a full disk; restart continued bitwise"
done

# A read-only filesystem: refused before any work, with one line, exit 2.
np=2
mkdir -p "$mnt/ro-run" && mount -o remount,ro "$mnt"
for args in "train $W/c.toml -P output.dir=$mnt/ro-run|is not writable (Read-only file system)" \
            "sample $W/ref2/model.h5 --count 10 --output $mnt/s.h5|its directory is not writable (Read-only file system)"; do
  IFS='|' read -r command fragment <<< "$args"
  # shellcheck disable=SC2086  # the command's words
  timeout 60 mpirun --oversubscribe -n $np "$cmera" $command > "$W/out.log" 2> "$W/err.log"
  rc=$?
  [ "$rc" -eq 2 ] && [ "$(grep -c '^cmera: error: ' "$W/err.log")" -eq 1 ] &&
    grep -q "^cmera: error: .*$fragment" "$W/err.log" ||
    { fail "read-only: $command: status $rc"; sed 's/^/    /' "$W/err.log" | head -n 5; }
done
[ "$failures" -eq 0 ] && echo "ok  read-only filesystem: train and sample refused"
[ "$failures" -eq 0 ] || { echo "$failures failures"; exit 1; }
