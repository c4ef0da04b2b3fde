#!/usr/bin/env bash
# Statistics-pass time per /configs layout (README "Bring your own data"): writes the same
# random binary data contiguous, in 1-row chunks, gzip-compressed and resizable (h5py's
# automatic chunks for the last two), then prints the "statistics pass ... in X s" time of
# `cmera train` (train.iterations = 0, so the pass and the model write are all it does),
# best of REPS runs, per layout and rank count. The trade-off: it times the real program
# (process start excluded, pair reads included), so the numbers carry the machine's load.
# Usage: jobs/timing-layouts.sh CMERA SAMPLES SITES NP... (e.g. build/bin/cmera 100000 32 1 2)
set -euo pipefail
cmera=$(realpath "$1"); samples=$2; sites=$3; shift 3
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
export OMP_NUM_THREADS=1
/usr/bin/python3 - "$samples" "$sites" "$w" <<'PY'
import sys, h5py, numpy as np
S, N, w = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
x = (np.random.default_rng(1).random((S, N)) < 0.3).astype(np.uint8)
for name, kw in [("contig", {}), ("rows1", {"chunks": (1, N)}),
                 ("gzip", {"compression": "gzip"}), ("resizable", {"maxshape": (None, N)})]:
    with h5py.File(f"{w}/{name}.h5", "w") as f:
        f.create_dataset("configs", data=x, **kw).attrs["alphabet"] = np.int32(2)
PY
for layout in ${LAYOUTS:-contig rows1 gzip resizable}; do
  for np in "$@"; do
    printf '[data]\npath = "%s"\n[model]\nchi = [2, 2, 2]\n[train]\niterations = 0\nrestarts = 1\n[output]\ndir = "%s"\n' \
      "$w/$layout.h5" "$w/out" > "$w/run.toml"
    best=
    for _ in $(seq "${REPS:-2}"); do
      t=$(mpirun --oversubscribe -n "$np" "$cmera" train "$w/run.toml" |
          sed -n 's/^statistics pass: .* in \([0-9.]*\) s on .*/\1/p')
      if [ -z "$best" ] || awk "BEGIN { exit !($t < $best) }"; then best=$t; fi
    done
    echo "$samples x $sites  $layout  np=$np  ${best} s"
  done
done
