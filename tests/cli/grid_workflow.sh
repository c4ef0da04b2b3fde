#!/usr/bin/env bash
# A grid model through the commands (docs/design-grid.md §5, README "Grid models"): train
# on an [S, Ly, Lx] dataset (windows and pair terms, intermediate alphabet 3), `info` on the model, `sample` at 1 and 2 ranks (the same
# /configs [S, Ly, Lx] bitwise: sample k has its own stream), and a run stopped at
# iteration 4 and continued with --restart latest writing the same model.h5 tables,
# bitwise, as the uninterrupted run (same rank count). Checks numbers in the files with
# Debian's python3 (h5py), never "it ran".
set -euo pipefail
cmera="$1"; src="$2"
py=/usr/bin/python3
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
run() { np=$1; shift; mpirun --oversubscribe -n "$np" "$cmera" "$@"; }
fail() { echo "FAIL: $*"; exit 1; }
export OMP_NUM_THREADS=1

run 2 generate ising2d --size 8 --beta 0.3 --samples 300 --seed 3 --output "$W/d.h5" >/dev/null
config() {  # config OUTPUT_DIR
  cat <<EOF
[data]
path = "$W/d.h5"
[model]
chi = [2, 2]
intermediate_chi = [3]
tied = false
[train]
iterations = 6
restarts = 2
restart_iterations = 2
checkpoint_every = 2
optimizer = "adam"
[output]
dir = "$1"
EOF
}
config "$W/whole" > "$W/whole.toml"
config "$W/parts" > "$W/parts.toml"
run 2 train "$W/whole.toml" > "$W/whole.log"
# pair terms on by default: two axes x (64 sites at r = 1 and at r = 2 + 16 at r = 4, every
# 2nd site)
grep -q "pair terms: 288 along x and y (distance r from sites every max(1, r/2) on both axes)" "$W/whole.log" ||
  { cat "$W/whole.log"; fail "no pair terms"; }

# info names the lattice
run 1 info "$W/whole/model.h5" > "$W/info.txt"
grep -q "model       grid Lx x Ly = 8 x 8, depth 1, chi = \[2, 2\], intermediate_chi = \[3\], untied, tables" "$W/info.txt" ||
  { cat "$W/info.txt"; fail "info does not show the grid"; }

# stop after 4 iterations (train.iterations = 4), continue to 6: the same tables
run 2 train "$W/parts.toml" -P train.iterations=4 >/dev/null
run 2 train "$W/parts.toml" --restart latest > "$W/parts.log"
grep -q "restart: continuing from $W/parts/checkpoint-00000004.h5" "$W/parts.log" ||
  { cat "$W/parts.log"; fail "did not continue from iteration 4"; }

# samples at 1 and 2 ranks
run 1 sample "$W/whole/model.h5" --count 40 --seed 7 --output "$W/s1.h5" >/dev/null
run 2 sample "$W/whole/model.h5" --count 40 --seed 7 --output "$W/s2.h5" >/dev/null

$py - "$W" <<'PY' || fail "file checks"
import sys, h5py, numpy as np
w = sys.argv[1]
def tables(path):
    out = {}
    with h5py.File(path) as f:
        f["model"].visititems(lambda n, o: out.__setitem__(n, o[...]) if isinstance(o, h5py.Dataset) else None)
        assert f["model"].attrs["lattice"] == b"grid" and int(f["model"].attrs["lx"]) == 8
        assert list(f["model"].attrs["intermediate_chi"]) == [3]
        hist = f["history/objective"][...]
    return out, hist
a, ha = tables(f"{w}/whole/model.h5")
b, hb = tables(f"{w}/parts/model.h5")
assert sorted(a) == sorted(b) and len(a) == 5, sorted(a)
# intermediate alphabet 3: y maps 2 -> 3, x maps 3 -> 2
assert a["layer_0/y/isometry"].shape == (4, 4, 2, 3, 3), a["layer_0/y/isometry"].shape
assert a["layer_0/y/disentangler"].shape == (4, 4, 3, 3, 3, 3)
assert a["layer_0/x/isometry"].shape == (8, 4, 3, 2, 2)
assert a["layer_0/x/disentangler"].shape == (8, 4, 2, 2, 2, 2)
assert a["top"].shape == (2,) * 16
for k in a:
    assert np.array_equal(a[k], b[k]), f"{k} differs after --restart latest"
assert np.array_equal(ha, hb) and len(ha) == 6
s1 = h5py.File(f"{w}/s1.h5")["configs"][...]
s2 = h5py.File(f"{w}/s2.h5")["configs"][...]
assert s1.shape == (40, 8, 8) and s1.dtype == np.uint8, (s1.shape, s1.dtype)
assert np.array_equal(s1, s2), "samples differ between 1 and 2 ranks"
assert 0 < s1.mean() < 1
print("ok: restart bitwise (5 arrays, 6 history entries), samples [40, 8, 8] equal at 1 and 2 ranks")
PY
echo "grid workflow: ok"
