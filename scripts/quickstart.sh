#!/usr/bin/env bash
# README command 1: install what is missing, build, then the main job on a built-in
# default: generate a 1D Ising dataset, train a tied chi=2 MERA on 2 MPI ranks,
# evaluate it (window KL, exact C(r) against the data) and draw samples from it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$here/scripts/setup.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export PMIX_MCA_pcompress_base_silence_warning=1
cd "$here"
out=cmera-out/quickstart
mkdir -p "$out"
cmera=build/bin/cmera
mpirun="mpirun --oversubscribe -n 2"

$mpirun $cmera generate ising1d --sites 128 --samples 100000 --corr 0.6 --seed 7 \
  --output "$out/ising1d.h5"
# --restart latest: a second quickstart continues (here: finishes at once) the run the
# first one left, since cmera never starts afresh over checkpoints it would have to delete.
$mpirun $cmera train inputs/ising1d.toml -P data.path="$out/ising1d.h5" -P output.dir="$out" --restart latest
$mpirun $cmera eval "$out/model.h5" --data "$out/ising1d.h5" --max-distance 16 | tee "$out/eval.txt"
$mpirun $cmera eval "$out/model.h5" --data "$out/ising1d.h5" --json > "$out/eval.json"
$mpirun $cmera sample "$out/model.h5" --count 1000 --seed 3 --output "$out/samples.h5"
/usr/bin/python3 postprocess/plots.py --model "$out/model.h5" --eval "$out/eval.json" \
  --samples "$out/samples.h5" --data "$out/ising1d.h5" --out "$out/plots"
echo
echo "quickstart: results in $here/$out"
echo "  model.h5    trained model (tables, config, objective history, provenance)"
echo "  eval.txt    window KL and C(r) of model vs data (table); eval.json the same as JSON"
echo "  samples.h5  1000 ancestral samples in the dataset format"
echo "  plots/      training.png, correlation.png (C(r), log-log), samples.png, flow.png"
echo "next: jobs/critical.sh learns critical 2D Ising rows at every scale (see README)"
