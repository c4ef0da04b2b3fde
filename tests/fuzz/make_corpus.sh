#!/usr/bin/env bash
# Regenerates the binary seeds of tests/fuzz/corpus_dataset and corpus_model with a built
# cmera and h5py (the TOML seeds of corpus_config are kept by hand). Small files on
# purpose: libFuzzer mutates faster and reaches the validators' branches sooner.
# Usage: tests/fuzz/make_corpus.sh CMERA
set -euo pipefail
cmera="$(realpath "$1")"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "$W"
mpirun -n 1 "$cmera" generate ising1d --sites 16 --samples 400 --corr 0.5 --output d.h5 >/dev/null
printf '[data]\npath = "d.h5"\n[model]\nchi = [2, 2, 2]\n[train]\niterations = 4\nrestarts = 1\ncheckpoint_every = 2\n[output]\ndir = "out"\n' > c.toml
mpirun -n 1 "$cmera" train c.toml >/dev/null
mkdir -p "$here/corpus_dataset" "$here/corpus_model"
cp d.h5 "$here/corpus_dataset/ising16.h5"
/usr/bin/python3 - "$here/corpus_dataset" <<'PY'
import sys, h5py, numpy as np
d = sys.argv[1]
with h5py.File(f"{d}/rank3.h5", "w") as f: f["configs"] = np.zeros((2, 4, 4), np.uint8)
with h5py.File(f"{d}/float.h5", "w") as f: f["configs"] = np.zeros((3, 8))
with h5py.File(f"{d}/values.h5", "w") as f:
    f["configs"] = np.arange(24, dtype=np.uint8).reshape(3, 8)
    f["configs"].attrs["alphabet"] = np.int32(3)
with h5py.File(f"{d}/noconf.h5", "w") as f: f["data"] = np.zeros(4, np.uint8)
PY
cp out/model.h5 "$here/corpus_model/model.h5"
cp "$(ls out/checkpoint-*.h5 | tail -n 1)" "$here/corpus_model/checkpoint.h5"
cp d.h5 "$here/corpus_model/dataset.h5"
ls -la "$here"/corpus_*
